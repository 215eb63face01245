package smtpd

import (
	"fmt"

	"github.com/emersion/go-smtp"
)

// Replies: what the front door answers and when. Every reply carries an
// enhanced status code (RFC 3463); "go-smtp" marks replies that the library
// gives before our code is asked.
//
//	When                                               Reply
//	-------------------------------------------------  ------------------------------------------
//	connect: over Config.MaxConnections                421 4.7.0 Too many connections, try again later
//	connect: over Config.MaxConnectionsPerIP           421 4.7.0 Too many connections from your address
//	connect: server shutting down                      421 4.3.2 Service shutting down, try again later
//	idle longer than IdleTimeout waiting for a command 421 4.4.2 Idle timeout (go-smtp)
//	idle or ReadTimeout during DATA or a BDAT chunk    421 4.4.2 Timeout reading the message: not queued; hang up
//	shutdown: session waiting for a command            421 4.4.2 (go-smtp's timeout reply), then close
//	shutdown: MAIL/RCPT while draining                 421 4.3.2 Service shutting down; hang up
//	Config.MaxErrors refusals in one session           421 4.7.0 Too many errors; hang up
//	MAIL/RCPT/DATA/AUTH out of order, bad sequence     503 5.5.1 (go-smtp, patched: see below)
//	MAIL inside a transaction                          503 5.5.1 Nested MAIL command
//	STARTTLS inside TLS                                503 5.5.1 Already running in TLS (go-smtp, patched)
//	STARTTLS with no Config.TLS                        502 5.5.1 TLS not supported (go-smtp)
//	HELP, EXPN, TURN, SEND, SOML, SAML                 502 5.5.1 command not implemented (go-smtp)
//	AUTH twice                                         503 5.5.1 Already authenticated (go-smtp)
//	unknown command / syntax                           500 5.5.2, 501 5.5.2, 501 5.5.4 (go-smtp); the 4th: 421 4.7.0 and close (patched)
//	MAIL/RCPT parameter unknown or not implemented     555 5.5.4 (go-smtp, patched: RFC 5321 4.1.1.11)
//	command line over MaxLineLength                    500 5.4.0 Too long line, closing connection (go-smtp)
//	AUTH without TLS                                   538 5.7.11 Encryption required
//	AUTH when no users are configured                  502 5.5.1 Authentication not enabled
//	AUTH with another mechanism than PLAIN, LOGIN      504 5.5.4 Unrecognized authentication type
//	AUTH malformed response                            501 5.5.2; bad base64: 501 5.5.2 (patched, RFC 4954 4); "*": 501 5.0.0
//	AUTH accepted                                      235 2.7.0 (go-smtp, patched: RFC 4954 section 6)
//	STARTTLS handshake fails                           550 5.0.0 Handshake error (go-smtp)
//	AUTH wrong user or password                        535 5.7.8 Authentication credentials invalid
//	                                                   (after AuthSlowAfter failures from the client: delayed)
//	AUTH after AuthMaxFailures failures from client    421 4.7.0 Too many failed authentications; hang up
//	MAIL from an untrusted, unauthenticated client     530 5.7.0 Authentication required
//	MAIL from a trusted network, sender not listed     530 5.7.0 Authentication required
//	MAIL by a user, sender not in the user's senders   553 5.7.1 Sender address not owned by user
//	MAIL/RCPT with a UTF-8 address without SMTPUTF8    553 5.6.7 Non-ASCII address requires SMTPUTF8
//	MAIL SIZE= over MaxMessageBytes                    552 5.3.4 (go-smtp)
//	RCPT outside our SMS domains (relaying)            550 5.7.1 Relaying denied
//	RCPT local part not a valid phone number           550 5.1.3
//	RCPT number in DenyPrefixes / not in AllowPrefixes 550 5.7.1 Destination not allowed
//	    or not in the user's prefixes
//	RCPT over MaxRecipients                            452 4.5.3 (go-smtp)
//	RCPT or DATA over a per-minute/hour rate           451 4.7.1 Rate limit reached, try again in …
//	RCPT or DATA over a daily quota                    550 5.7.1 Daily quota exceeded, resets at …
//	DATA needing more than a limit allows at all       550 5.7.1 Mail needs N SMS …, more than the limit
//	DATA over MaxMessageBytes                          552 5.3.4 Maximum message size exceeded (go-smtp)
//	DATA/BDAT with a line over MaxLineLength           552 5.3.4 Message has a line longer than N bytes (after the end of data)
//	DATA with a bare CR or LF                          550 5.5.2 (smuggling guard)
//	DATA with no text and no subject                   550 5.6.0
//	DATA too complex (MIME depth, parts)               552 5.3.4
//	DATA over the segment cap with overflow=reject     550 5.3.4
//	DATA unreadable                                    554 5.6.0
//	DATA store commit failed                           451 4.3.0 not queued
//	DATA accepted, every record committed              250 2.0.0 OK: queued as <ids> (as many as fit in 512 octets, then "and N more")
//	LMTP DATA                                          one of the DATA replies per recipient
//
// Bad sequences (also MAIL or AUTH right after STARTTLS, before the new
// EHLO) get 503 5.5.1 as RFC 5321 section 4.3.2 says. go-smtp answers them
// before our session is asked, and upstream v0.25.1 says 502: we build with
// a patched copy, third_party/go-smtp (see its PATCHES.md). HELP, EXPN,
// TURN and the like stay 502 5.5.1: not implemented.
var (
	errAuthRequired = reply(530, 5, 7, 0, "Authentication required: your network is not trusted")
	errNestedMail   = reply(503, 5, 5, 1, "Nested MAIL command: a transaction is open (RSET first)")
	errBareNewline  = reply(550, 5, 5, 2, "Message contains bare CR or LF: lines must end in CRLF (RFC 5321 section 2.3.8)")
	errNoText       = reply(550, 5, 6, 0, "Message has neither a text body nor a subject: nothing to send as SMS")
	errTooComplex   = reply(552, 5, 3, 4, "Message too complex (MIME nesting, parts or text size over the limit)")
	errStore        = reply(451, 4, 3, 0, "Temporary local problem: message not queued, try again later")

	errShuttingDown   = reply(421, 4, 3, 2, "Service shutting down, try again later")
	errTooManyErrors  = reply(421, 4, 7, 0, "Too many errors in this session, closing connection")
	errDataTimeout    = reply(421, 4, 4, 2, "Timeout reading the message: not queued, closing connection")
	errNeedTLS        = reply(538, 5, 7, 11, "Encryption required for requested authentication mechanism: use STARTTLS")
	errAuthDisabled   = reply(502, 5, 5, 1, "Authentication not enabled")
	errAuthMechanism  = reply(504, 5, 5, 4, "Unrecognized authentication type: use PLAIN or LOGIN")
	errAuthMalformed  = reply(501, 5, 5, 2, "Malformed authentication response")
	errAuthFailed     = reply(535, 5, 7, 8, "Authentication credentials invalid")
	errAuthLocked     = reply(421, 4, 7, 0, "Too many failed authentications from your address, try again later")
	errUTF8Address    = reply(553, 5, 6, 7, "Non-ASCII address requires SMTPUTF8 (RFC 6531)")
	errTrustedSender  = reply(530, 5, 7, 0, "Authentication required: this sender may not send from your network without AUTH")
	errDestinationBad = reply(550, 5, 7, 1, "Destination not allowed")
)

// Raw replies for clients refused before go-smtp sees them.
var (
	replyShuttingDown  = []byte("421 4.3.2 Service shutting down, try again later\r\n")
	replyTooManyConns  = []byte("421 4.7.0 Too many connections, try again later\r\n")
	replyTooManyFromIP = []byte("421 4.7.0 Too many connections from your address, try again later\r\n")
)

func reply(code, a, b, c int, msg string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{a, b, c}, Message: msg}
}

func replyf(code, a, b, c int, format string, args ...any) *smtp.SMTPError {
	return reply(code, a, b, c, fmt.Sprintf(format, args...))
}
