package abi

// Frame rings: how a NIC's frames cross between tender and guest without an
// exit per frame. The tender maps a ring region into guest memory at a
// fixed address (NIC.Ring); it holds a header page, then RingSlots receive
// slots (tender → guest), then RingSlots transmit slots (guest → tender).
// Each ring has one producer and one consumer, which advance free-running
// 32-bit head and tail counters; slot i%RingSlots holds a 32-bit frame
// length followed, at RingSlotData, by the frame.
//
// Notifications are suppressed while the other side is busy: a consumer
// about to sleep sets its ring's NeedKick word, then checks the ring once
// more — before every sleep, also after a wake-up that brought nothing,
// since that wake-up may answer an earlier request whose NeedKick the
// producer cleared late; a producer that finds NeedKick set after
// publishing clears it and notifies — the tender by writing NIC.FD (an eventfd the guest polls), the
// guest by a 4-byte store to NIC.Kick, a doorbell that the host kernel
// turns into a wake-up of the tender's device thread (on hvt a KVM
// ioeventfd: an exit that never reaches the tender). A guest that finds its transmit ring full
// retries shortly: the tender drains it as fast as the host takes frames.
const (
	RingSlots    = 256
	RingSlotSize = 2048
	RingSlotData = 8 // frame bytes start here; the length is the slot's first 4
	RingMaxFrame = RingSlotSize - RingSlotData

	RingHeader = 4096
	// Header words (uint32), each on its own cache line.
	RingRxHead     = 0   // tender: frames written for the guest
	RingRxTail     = 64  // guest: frames the guest has taken
	RingRxNeedKick = 128 // guest: set while waiting for frames
	RingTxHead     = 192 // guest: frames written for the tender
	RingTxTail     = 256 // tender: frames the tender has taken
	RingTxNeedKick = 320 // tender: set while its device thread sleeps

	RingRx   = RingHeader
	RingTx   = RingHeader + RingSlots*RingSlotSize
	RingSize = RingTx + RingSlots*RingSlotSize
)
