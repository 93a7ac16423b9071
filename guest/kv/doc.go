// Package kv is a crash-safe key-value store on a block device.
//
// The guarantee: once Put or Delete has returned nil, the change survives
// any crash — of the program, the unikernel or the host process — whatever
// the device did with writes not yet covered by a completed Sync (dropped,
// torn, reordered); and a torn or corrupted record is detected by its
// checksum and never returned as data.
//
// How: the device holds two superblock slots and two log regions. Each
// change is appended to the active region as a checksummed record, then
// the device is synced before the call returns. Opening replays the active
// region up to the first record that is torn, corrupt, or from an earlier
// use of the region (records carry the generation that made the region
// active). Compaction writes the live data to the other region, syncs it,
// then commits by writing a new superblock (alternating slots, so a torn
// superblock leaves the previous one) and syncing again.
//
// Values are kept in memory as well: the store is meant for a service's
// state (sessions, settings, counters), not for data larger than its RAM.
package kv
