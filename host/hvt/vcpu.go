package hvt

import (
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/hvt/kvm"
)

// parkVCPU keeps an unused vCPU for a later thread.
func (m *machine) parkVCPU(c *vcpu) {
	m.mu.Lock()
	m.idle = append(m.idle, c)
	m.mu.Unlock()
}

// dropThread undoes addThread for a thread that never ran.
func (m *machine) dropThread(t *thread) {
	m.mu.Lock()
	m.forgetLocked(t)
	m.idle = append(m.idle, t.cpu)
	m.mu.Unlock()
	unix.Close(t.kickFD)
}

// initialSregs is vCPU c's special registers on entry to the program.
func (m *machine) initialSregs(c *vcpu) kvm.Sregs {
	s := initialSregs(c.pageVA)
	s.CR3 = m.mem.pml4
	if m.xcr0 == 0 {
		s.CR4 &^= cr4OSXSAVE
	}
	return s
}

// vcpu is a KVM vCPU with its GDT, TSS and ring-0 stack.
type vcpu struct {
	id      int
	k       *kvm.VCPU
	pageVA  uint64 // GDT and TSS
	stackPA uint64 // ring-0 stack page (physical)
}

// stackTopVA is where the CPU pushes exception frames.
func (c *vcpu) stackTopVA() uint64 { return c.pageVA + 2*pageSize }

// newVCPU returns a parked vCPU or creates one.
func (m *machine) newVCPU() (*vcpu, error) {
	m.mu.Lock()
	if n := len(m.idle); n > 0 {
		c := m.idle[n-1]
		m.idle = m.idle[:n-1]
		m.mu.Unlock()
		return c, nil
	}
	m.mu.Unlock()
	return m.createVCPU()
}

// createVCPU makes a new vCPU: 100–250 µs of KVM calls under nested
// virtualization.
func (m *machine) createVCPU() (*vcpu, error) {
	m.mu.Lock()
	id := m.nextVCPU
	m.nextVCPU++
	m.mu.Unlock()
	if id >= maxVCPUs {
		return nil, fmt.Errorf("hvt: more than %d vCPUs", maxVCPUs)
	}

	k, err := m.vm.CreateVCPU(id)
	if err != nil {
		return nil, err
	}
	c := &vcpu{id: id, k: k, pageVA: kernCPU + uint64(id)*cpuStride}
	m.mem.mu.Lock()
	pagePA, err := m.mem.kernelPage(c.pageVA, false)
	if err == nil {
		c.stackPA, err = m.mem.kernelPage(c.pageVA+pageSize, false)
	}
	m.mem.mu.Unlock()
	if err != nil {
		k.Close()
		return nil, err
	}
	buildCPUPage(m.mem.host[pagePA:pagePA+pageSize], c.pageVA+tssOffset, c.stackTopVA())

	cpuid := append([]kvm.CPUIDEntry(nil), m.cpuid...)
	for i := range cpuid {
		if cpuid[i].Function == 1 {
			cpuid[i].EBX = cpuid[i].EBX&0x00ffffff | uint32(id)<<24 // initial APIC ID
		}
	}
	if err := k.SetCPUID(cpuid); err != nil {
		k.Close()
		return nil, err
	}
	if err := k.SetMSRs([]kvm.MSR{
		{Index: msrSTAR, Data: uint64(selKernelCS)<<32 | uint64(selUserDS-8-3)<<48},
		{Index: msrLSTAR, Data: kernEntry},
		{Index: msrCSTAR, Data: kernEntry},
		{Index: msrSFMASK, Data: 0x47700}, // TF, DF, IF, IOPL, NT, AC, as Linux
	}); err != nil {
		k.Close()
		return nil, err
	}
	if m.xcr0 != 0 {
		xcrs := kvm.XCRs{NrXCRs: 1}
		xcrs.XCRs[0] = kvm.XCR{XCR: 0, Value: m.xcr0}
		if err := k.SetXCRs(&xcrs); err != nil {
			k.Close()
			return nil, err
		}
	}
	if err := k.EnableCap(kvm.CapSyncRegs); err != nil {
		// Not all hosts let the capability be enabled; it is on by default
		// for x86 where supported, so only the valid-regs selection below
		// matters.
		_ = err
	}
	// The events tell whether KVM holds an exception for the vCPU
	// (signalsHeld).
	k.Run.SetValid(kvm.SyncRegsGPRs | kvm.SyncRegsSregs | kvm.SyncRegsEvents)
	return c, nil
}

// prepareVCPUs creates n vCPUs ahead of the guest's first clones, while
// the guest is busy starting: a Go program makes a few threads at once
// (an HTTP server four before it serves), and each clone that had to
// create its vCPU would wait for it.
func (m *machine) prepareVCPUs(n int) {
	for i := 0; i < n && !m.exiting.Load(); i++ {
		c, err := m.createVCPU()
		if err != nil {
			return
		}
		m.parkVCPU(c)
	}
}
