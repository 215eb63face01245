// Package store keeps smsbridge's records in a bbolt file: one record per
// (mail, recipient), its segments, state and history, and the indexes that
// the dispatcher and the receipt path look them up by.
//
// # States
//
// A record moves through these states:
//
//	Add ──► Queued ──► Submitted ──► Delivered   (every segment SegDelivered)
//	          ▲  │          │    └───► Failed      (some segment SegFailed)
//	          └──┘◄─────────┘
//	      retry (Update)     └─ Queued ──► Failed  (permanent error, set by Update)
//
// Add puts a record in Queued. The dispatcher moves it with Update (to
// Submitted once the SMSC accepted every segment, back to Queued with a later
// NextAttempt for a retry, or to Failed). Receipts move it to a final state:
//
//   - a receipt with stat DELIVRD makes its segment SegDelivered; UNDELIV,
//     EXPIRED, REJECTD, DELETED and UNKNOWN make it SegFailed; any other stat
//     (ENROUTE, ACCEPTD…) is recorded in Segment.Stat/Err and leaves the
//     segment's state alone;
//   - a receipt for a segment already SegDelivered or SegFailed is a duplicate
//     and is ignored (no event, nothing written);
//   - the record becomes Failed as soon as one segment is SegFailed (LastError
//     "stat=UNDELIV err=001"), and Delivered when every segment is
//     SegDelivered; this happens only from Submitted, or from Queued when a
//     receipt arrives late for a record that went back for a retry;
//   - a final record (Delivered, Failed) never changes because of a receipt.
//
// Each receipt that is applied appends a "receipt" event ("seg 1/3
// stat=DELIVRD err=000"), and the change of state a "delivered" or "failed"
// event.
//
// A receipt whose SMSC id is not known yet (it overtook the Update that
// records the id) is parked. Update matches every SMSC id it newly sets on a
// segment against the parked receipts and applies them in the same
// transaction. Parked receipts older than Options.ParkedMaxAge are removed a
// few at a time each time a receipt is parked, or all at once by PurgeParked.
//
// # Layout
//
// Buckets in the file (ids are 24 lowercase hex digits, see newID):
//
//	meta        "version" → "1"
//	records     id → record, JSON-encoded
//	due         NextAttempt (8 bytes, big-endian, ordered) ‖ id → ""   (State == Queued)
//	smscid      SMSC message id → segment index (4 bytes, big-endian) ‖ id
//	report      id → ""   (State.Final() && !ReportDone)
//	parked      SMSC message id → parked receipt, JSON-encoded
//	parked_age  parked time (8 bytes) ‖ SMSC message id → ""
//
// Records are JSON so that an operator can read them with the bbolt tool and
// so that fields can be added without a migration; a later binary encoding can
// tell itself apart by its first byte (JSON always starts with '{').
//
// Every index is derived from the record alone and written in the same
// transaction as the record (see Store.put), so they never disagree after a
// crash. Every commit is fsync'd; Add and ApplyReceipt go through db.Batch so
// that concurrent callers share one commit.
//
// Limits given to the listing methods count records; a limit <= 0 means no
// limit.
package store
