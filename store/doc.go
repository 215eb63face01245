// Package store keeps smsbridge's records in a bbolt file: one record per
// (mail, recipient), its segments, state and history, and the indexes that
// the dispatcher and the receipt path look them up by.
//
// # States
//
// A record moves through these states (transitions in state.go is the one
// table of allowed changes; Update refuses any other with an error wrapping
// ErrBadTransition and writes nothing):
//
//	Add ──► queued ──► submitting ──► submitted ──► delivered | failed | expired | cancelled
//	          ▲             │
//	          └─────────────┘ retry (temporary error), Recover (after a crash)
//
//	from queued:     submitting, submitted, delivered*, failed, expired, cancelled
//	from submitting: queued, submitted, delivered*, failed, expired, cancelled
//	from submitted:  queued, delivered*, failed, expired, cancelled
//	final (delivered, failed, expired, cancelled): no way out
//	* only when every segment is SegDelivered
//
// Staying in a state is not a transition and is always allowed (a final
// record still takes ReportDone and events). An unknown state is refused,
// both ways.
//
// Add puts a record in Queued. The dispatcher takes due records, moves each
// to Submitting before the first submit_sm, records every SMSC id as it
// arrives, and moves it to Submitted once the SMSC accepted every segment;
// a temporary error sends it back to Queued with a later NextAttempt, a
// permanent one to Failed, the end of its validity to Expired. Submitting
// records have an index of their own: after a crash, Recover (called at
// start-up, before the dispatcher runs) moves every one of them back to
// Queued, due at once, with a "recovered" event, and the segments without an
// SMSC id are submitted again. That is at least once: a segment the SMSC
// accepted but whose id was not written yet is sent twice; the window is the
// dispatcher's in-flight submits, nothing more.
//
// Receipts move a record to a final state, from Submitted and also from
// Queued or Submitting (some segments already have ids):
//
//   - a receipt with stat DELIVRD makes its segment SegDelivered; UNDELIV,
//     EXPIRED, REJECTD, DELETED and UNKNOWN make it SegFailed; any other stat
//     (ENROUTE, ACCEPTD…) is recorded in Segment.Stat/Err and leaves the
//     segment's state alone;
//   - a receipt for a segment already SegDelivered or SegFailed is a duplicate
//     and is ignored (no event, nothing written); receipts may come in any
//     order;
//   - the record becomes Failed as soon as one segment is SegFailed (LastError
//     "stat=UNDELIV err=001"), and Delivered when every segment is
//     SegDelivered;
//   - a final record never changes because of a receipt.
//
// Each receipt that is applied appends a "receipt" event ("seg 1/3
// stat=DELIVRD err=000"), and the change of state a "delivered" or "failed"
// event. The store sets FinalAt when a record becomes final.
//
// A receipt whose SMSC id is not known yet (it overtook the Update that
// records the id) is parked. Update matches every SMSC id it newly sets on a
// segment against the parked receipts and applies them in the same
// transaction. Parked receipts older than Options.ParkedMaxAge are removed a
// few at a time each time a receipt is parked, and by Purge.
//
// # Writes and durability
//
// Every write (Add, Update, ApplyReceipt, Cancel, Recover, Purge) is handed
// to one writer goroutine, which runs every write waiting in one round,
// appends what the round changed to a write-ahead log beside the bbolt file
// (smsbridge.db-wal.N) and fdatasyncs it (group commit; see writer.go and
// wal.go). A write alone is logged at once; writes that arrive meanwhile
// share the next round. The writer does not wait for a round's fdatasync:
// a syncer goroutine writes and syncs the rounds while the writer runs the
// next ones, so the CPU of one round and the disk wait of the one before
// overlap. There is no batching timer and no NoSync. A write returns only
// after its log record, and every one before it, is on disk.
//
// The changes also go into an in-memory overlay that every read and write
// sees above bbolt (kv.go). Checkpoints copy the overlay into bbolt in one
// transaction, committed with fsync, every 4 MiB of log or every second,
// in the background; then the log file goes. Four or five writes of one
// message collapse there into one, and bbolt commits a few times a second
// instead of once per round. Open replays the log a crash left (every
// round after the last checkpoint, up to the first torn record, which was
// never acknowledged) into bbolt before anything else; Close checkpoints
// everything, so a cleanly closed store is the bbolt file alone. A failed
// log write or checkpoint stops every later write with its error: after a
// failed fdatasync nobody knows what the file holds, and Open's replay is
// the way back.
//
// Reads (Get, Due, the lists) see what the last round run left, never one
// being undone, and return only once that round is durable: a read never
// hands out what a crash could take back. If the log fails first, the read
// returns its error, and the rounds not yet durable are taken back out of
// the overlay; later reads see what was durable before. (What a failed
// fdatasync was making durable may still be on disk and come back at the
// next Open: its writers got an error, which then means "unknown".)
//
// Because a shared round is run again without a write that failed in it
// (the round is undone first), the function given to Update may run more than once, each time on a
// fresh copy of the record read inside the transaction: it must only change
// the record. Add fixes ids and times before its transaction and reads
// references and duplicates inside it, and changes the caller's records only
// after the commit.
//
// # Concatenation references
//
// Add gives every record the next reference of its destination: a counter
// per To in the refs_gen bucket, incremented by one per record, wrapping at
// 65536, written in the same transaction, so references stay unique per
// destination across restarts. Even a single SMS takes one: the dispatcher
// may encode it again for a route that needs more parts. The 8-bit UDH uses
// the low byte, which cycles through 256 values per destination. A counter
// untouched for between one and two weeks is dropped by Purge (and starts
// again at 1), whatever Options.Retention.
//
// # Duplicates
//
// A client that lost our 250 sends the mail again. Add does not store a
// record whose (MessageID, sender, user, To) it accepted less than
// Options.DedupWindow ago
// (10 minutes by default), in an earlier Add or earlier in the same one: it
// sets the record's DuplicateOf (and ID) to the earlier record's id and
// returns nil, so the client still gets its 250. An empty Message-ID never
// matches. The same mail to two recipients is two records, not a duplicate.
//
// # Reports
//
// The report loop finds its work through two indexes, never by scanning
// records: report_due holds the records whose report (final, or a delay
// report being retried) is due at ReportNextAttempt (zero: at once), and
// delay the records not final yet that may need a delay report, by
// Created, so that DelayDue(now - threshold) lists those waiting too long.
// When a record becomes final the store resets its report retry (the final
// report is due at once); when its report is done it drops Original, the
// copy of the mail kept for RET=FULL, and its claim on the mail's header
// block. Add keeps a mail's header block apart from its records, once for
// those it adds together (Record.HeaderRef, Store.Header): a record is rewritten four
// or five times in its life, the header, often most of its size, once.
//
// # Retention and the file's size
//
// Purge deletes final records whose report is done and which became final
// more than Options.Retention ago (7 days by default), with their index
// entries, then stale dedup entries, reference counters and parked
// receipts, a few hundred keys per transaction so that writers never wait
// long. It finds records through time-ordered indexes and never reads a live
// record. Dedup entries and reference counters have no age index (one more
// write per Add); their keys start with their generation, a period of fixed
// length (10 minutes for dedup, a week for refs, see generation), and Purge
// deletes the old generations as one range of keys. Run it every few
// minutes.
//
// Checkpoints fill the pages of the buckets keyed by a record id or a time
// (records, headers, the time indexes: new keys go at their end) to 90%
// instead of bbolt's 50%, which cut the bytes written per record by about
// a third. The buckets keyed by an SMSC id, a hash or a number keep
// bbolt's half-full pages, where new keys land anywhere.
//
// bbolt reuses freed pages but never shrinks the file. To give the space
// back, stop the server and compact the file offline:
//
//	go install go.etcd.io/bbolt/cmd/bbolt@v1.5.0
//	bbolt compact -o smsbridge.db.new smsbridge.db
//	mv smsbridge.db.new smsbridge.db
//
// # Layout
//
// Buckets in the file (ids are 24 lowercase hex digits, see newID; times are
// 8 bytes that sort like the time, see timeKey):
//
//	meta        "version" → "7"; "wal_seq" → the last log round bbolt holds
//	            (8 bytes, big-endian)
//	records     id → record (binary, see codec.go; JSON from layout 1 is read too)
//	due         NextAttempt ‖ id → ""                         (State == Queued)
//	submitting  id → ""                                       (State == Submitting)
//	smscid      SMSC message id → segment index (4 bytes, big-endian) ‖ id
//	report      id → ""                                       (final, !ReportDone)
//	final       FinalAt ‖ id → ""                             (final, ReportDone)
//	report_due  ReportNextAttempt ‖ id → ""                   (final and !ReportDone, or
//	            not final with a delay report being retried)
//	delay       Created ‖ id → ""                             (not final, !DelayDone, no
//	            retry, and NOTIFY, ReportPolicy and NoReport allow a delay report)
//	counts      state → number of records (8 bytes, big-endian)
//	dedup_gen   generation ‖ MessageID ‖ 0x00 ‖ sender (lower case) ‖ 0x00 ‖ user ‖ 0x00 ‖ To
//	            → accepted time ‖ id (generation: the start of the accepted
//	            time's 10 minutes, see generation; MessageID ‖ sender ‖ user
//	            over 256 bytes is replaced by "sha256:" and its hex digest)
//	refs_gen    generation ‖ To → last reference (2 bytes) ‖ time last used
//	            (generation: the start of that time's week)
//	originals   id of a mail's first record → number of records sharing it (uvarint) ‖
//	            the mail, for RET=FULL reports (Record.OriginalRef)
//	headers     id of a mail's first record → number of records sharing it (uvarint) ‖
//	            the mail's header block, for reports (Record.HeaderRef)
//	parked      SMSC message id → parked receipt, JSON-encoded
//	parked_age  parked time ‖ SMSC message id → ""
//
// Every index and count is written in the same round as its record
// (see Store.put), so they never disagree after a crash. Start-up reads no
// record: Due, Recover and Counts read their index or bucket. A layout 1 file
// (JSON records, fewer buckets) is migrated by Open, which rebuilds the
// indexes from the records once.
//
// Limits given to the listing methods count records; a limit <= 0 means no
// limit.
package store
