package hvt

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/moteos/mote/abi"
	"github.com/moteos/mote/host/confine"
	"github.com/moteos/mote/host/exitstatus"
	"github.com/moteos/mote/host/hvt/kvm"
	"github.com/moteos/mote/host/hvt/shim"
	"github.com/moteos/mote/host/hvt/vdso"
	"github.com/moteos/mote/host/image"
	"github.com/moteos/mote/host/procs"
)

// Exit statuses the tender itself chooses, distinct from the guest's own.
const (
	ExitTender     = exitstatus.Tender
	ExitOOM        = exitstatus.OOM
	ExitCrash      = exitstatus.Crash
	ExitBadSyscall = exitstatus.BadSyscall
)

// ExitError is a guest run the tender ended, with the status to exit with.
type ExitError = exitstatus.Error

// machine is one running guest.
type machine struct {
	wd    atomic.Pointer[string] // the working directory once chdir changed it (files.go)
	cfg   Config
	img   *image.Image
	sys   *kvm.System
	vm    *kvm.VM
	mem   *memory
	cpuid []kvm.CPUIDEntry
	xcr0  uint64
	xsize int // bytes of XSAVE state for the enabled features
	// fpArea is every signal frame's vector-state area as the tender
	// writes it, before the shim's XSAVE fills it (fpTemplate); it
	// depends on the features alone, so it is made once.
	fpArea []byte

	stdout, stderr io.Writer

	mu       sync.Mutex
	threads  map[int]*thread
	nextTID  int
	idle     []*vcpu // vCPUs of exited threads, kept for reuse
	nextVCPU int

	sig      sigState
	fds      *fdTable
	futexes  futexTable
	timers   timers
	stats    *stats
	trace    *tracer
	prof     *profiler // nil unless Config.Profile
	start    time.Time
	timePA   uint64 // the vDSO data page
	manifest string // MOTE_MANIFEST=… for the guest
	devs     []*ringDev
	stopFD   int    // eventfd written when the guest ends, for device threads
	procPA   uint64 // the shim's process page
	blocks   []bool // thread blocks in use, guarded by mu

	cloneFailures atomic.Int64 // clones answered EAGAIN
	patched       int          // system-call sites rewritten to call the shim

	doorbellPA uint64 // guest-physical page outside the memory slot
	kickPA     uint64 // the NICs' doorbells (netdev.go), past doorbellPA; 0 until mapped

	wg       sync.WaitGroup
	exiting  atomic.Bool
	exitOnce sync.Once
	status   int
	fatal    *ExitError
	oomSeen  atomic.Bool
	guestErr *oomWatch // the guest's standard error, watched for Go's out-of-memory death
	done     chan struct{}
}

// Run boots cfg.Image and returns the guest's exit status. A non-nil error
// means the tender stopped the guest (bad image, fault, out of memory); it
// carries a non-zero status of its own via ExitCode.
func Run(ctx context.Context, cfg Config) (int, error) {
	img, err := image.Open(cfg.Image)
	if err != nil {
		return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
	}
	defer img.Close()
	m, err := newMachine(cfg, img)
	if err != nil {
		return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
	}
	defer m.close()
	return m.run(ctx)
}

func newMachine(cfg Config, img *image.Image) (*machine, error) {
	if cfg.Memory == 0 {
		cfg.Memory = 64 << 20
	}
	if cfg.Memory < 16<<20 {
		return nil, fmt.Errorf("hvt: -m %d MiB is below the 16 MiB minimum", cfg.Memory>>20)
	}
	if cfg.CPUs <= 0 {
		cfg.CPUs = 1
	}
	if cfg.CPUs > 64 {
		return nil, fmt.Errorf("hvt: --cpus %d: at most 64", cfg.CPUs)
	}
	if err := checkLayout(img); err != nil {
		return nil, err
	}
	if err := checkFits(img, cfg.Memory); err != nil {
		return nil, err
	}
	// Each NIC takes 2 MiB of rings below the Go heap and a word of the
	// doorbell page (netdev.go); 64 is far more than a service needs.
	if len(cfg.NICs) > 64 {
		return nil, fmt.Errorf("hvt: %d NICs: at most 64", len(cfg.NICs))
	}
	m := &machine{
		cfg:     cfg,
		img:     img,
		stdout:  orDiscard(cfg.Stdout),
		stderr:  orDiscard(cfg.Stderr),
		threads: map[int]*thread{},
		nextTID: 1,
		stats:   newStats(),
		start:   time.Now(),
		done:    make(chan struct{}),
	}
	m.guestErr = &oomWatch{w: m.stderr}
	if cfg.Trace != nil {
		m.trace = &tracer{w: cfg.Trace}
	}
	if cfg.Profile != nil {
		m.prof = newProfiler()
		img.Symbolize(img.Entry) // parse the line table now, not while a sampled vCPU waits
	}
	var imgSize uint64
	for _, s := range img.Segments {
		imgSize += alignUp(s.Memsz, pageSize) + pageSize
	}
	var err error
	// The reserve holds page tables, kernel pages, the image's .bss and a
	// 2 MiB ring region per NIC.
	reserve := 16<<20 + imgSize + cfg.Memory/32 + uint64(len(cfg.NICs))*hugeSize
	if m.stopFD, err = unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK); err != nil {
		return nil, fmt.Errorf("hvt: eventfd: %w", err)
	}
	if m.mem, err = newMemory(cfg.Memory, reserve); err != nil {
		return nil, err
	}
	if m.sys, err = kvm.Open(); err != nil {
		m.mem.release()
		return nil, err
	}
	if m.vm, err = m.sys.CreateVM(); err != nil {
		m.close()
		return nil, err
	}
	if err := m.vm.SetTSSAddr(0xfffbd000); err != nil {
		m.close()
		return nil, err
	}
	if err := m.vm.SetMemory(0, 0, m.mem.host); err != nil {
		m.close()
		return nil, err
	}
	if err := m.setupCPUID(); err != nil {
		m.close()
		return nil, err
	}
	if err := m.setupKernel(); err != nil {
		m.close()
		return nil, err
	}
	m.fds = newFDTable(m)
	m.blocks = make([]bool, shim.MaxThreads)
	man, err := m.installDevices()
	if err != nil {
		m.close()
		return nil, err
	}
	js, err := man.Encode()
	if err != nil {
		m.close()
		return nil, err
	}
	m.manifest = abi.EnvManifest + "=" + string(js)
	return m, nil
}

func orDiscard(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

func (m *machine) close() {
	m.mu.Lock()
	for _, t := range m.threads {
		t.cpu.k.Close()
	}
	for _, c := range m.idle {
		c.k.Close()
	}
	m.mu.Unlock()
	if m.fds != nil {
		m.fds.closeAll()
	}
	for _, d := range m.devs {
		d.close()
	}
	if m.stopFD > 0 {
		unix.Close(m.stopFD)
	}
	if m.vm != nil {
		m.vm.Close()
	}
	if m.sys != nil {
		m.sys.Close()
	}
	if m.mem != nil {
		m.mem.release()
	}
}

// setupCPUID takes KVM's supported CPUID. Where KVM offers XSAVE, the
// guest gets CR4.OSXSAVE and an XCR0 with every user state KVM supports
// among x87, SSE, AVX and AVX-512; where it does not (kvm-pvm hides it),
// the guest has x87 and SSE, saved and restored by the tender through
// KVM_GET_XSAVE/KVM_SET_XSAVE either way.
func (m *machine) setupCPUID() error {
	ents, err := m.sys.SupportedCPUID()
	if err != nil {
		return err
	}
	for i := range ents {
		e := &ents[i]
		if e.Function == 1 && e.ECX&(1<<26) != 0 {
			e.ECX |= 1 << 27 // OSXSAVE
			m.xcr0 = 3
		}
	}
	m.xsize = 576 // legacy area + XSAVE header
	if m.xcr0 != 0 {
		for i := range ents {
			e := &ents[i]
			if e.Function == 0xd && e.Index == 0 {
				m.xcr0 = (uint64(e.EDX)<<32 | uint64(e.EAX)) & 0xe7
			}
		}
		for i := range ents {
			e := &ents[i]
			if e.Function == 0xd && e.Index >= 2 && e.Index < 64 && m.xcr0&(1<<e.Index) != 0 {
				m.xsize = max(m.xsize, int(e.EBX+e.EAX))
			}
		}
	}
	if m.xsize > 4096 {
		return fmt.Errorf("hvt: XSAVE state of %d bytes does not fit KVM_GET_XSAVE", m.xsize)
	}
	m.cpuid = ents
	m.fpArea = m.fpTemplate()
	return nil
}

// setupKernel maps the IDT, the ring-0 stubs and the vDSO.
func (m *machine) setupKernel() error {
	// Reserved whole, so that no mmap, munmap, mprotect or madvise of the
	// guest's reaches the tender's pages (the doorbell is not memory).
	m.mem.insert(area{kernBase, kernEnd, 0, areaKernel})
	pa, err := m.mem.kernelPage(kernIDT, false)
	if err != nil {
		return err
	}
	buildIDT(m.mem.host[pa : pa+pageSize])
	if pa, err = m.mem.kernelPage(kernStubs, true); err != nil {
		return err
	}
	buildStubs(m.mem.host[pa : pa+pageSize])
	// SYSCALL enters its target without leaving user privilege on
	// kvm-pvm, so the entry page must be user-executable; exceptions do
	// reach ring 0 and keep supervisor-only stubs.
	if pa, err = m.mem.allocPage(); err != nil {
		return err
	}
	if err := m.mem.mapPage(kernEntry, pa, ptePresent|pteUser); err != nil {
		return err
	}
	buildEntry(m.mem.host[pa : pa+pageSize])
	m.doorbellPA = uint64(len(m.mem.host))
	if err := m.mem.mapPage(kernDoorbell, m.doorbellPA, ptePresent|pteUser|pteWrite|pteNX); err != nil {
		return err
	}

	if err := m.mem.populate(vdsoBase, vdsoBase+pageSize, protRead|protExec, vdso.Image(), 0); err != nil {
		return err
	}
	if err := m.mem.populate(vdsoBase+pageSize, vdsoBase+vdso.Size, protRead, nil, 0); err != nil {
		return err
	}
	m.mem.insert(area{vdsoBase, vdsoBase + vdso.Size, protRead | protExec, areaVDSO})
	m.timePA, _, _ = m.mem.translate(vdsoBase + pageSize)
	return m.setupShim()
}

// setupShim maps the shim's code, its process page and the thread blocks.
func (m *machine) setupShim() error {
	mem := m.mem
	if err := mem.populate(shimBase, shimBase+pageSize, protRead|protExec, shim.Code, 0); err != nil {
		return err
	}
	if err := mem.populate(shimBase+shim.ProcOffset, shimBase+shim.Size, protRead|protWrite, nil, 0); err != nil {
		return err
	}
	mem.insert(area{shimBase, shimBase + shim.Size, protRead, areaShim})
	m.procPA, _, _ = mem.translate(shimBase + shim.ProcOffset)
	mask := uint64(1)<<uint(m.cfg.CPUs) - 1
	if m.cfg.CPUs == 64 {
		mask = ^uint64(0)
	}
	le.PutUint64(mem.host[m.procPA+shim.ProcCPUMask:], mask)
	return nil
}

// background runs f on a goroutine of its own that run waits for, with
// the vCPU and device threads, before the machine is taken apart: f may
// use guest memory and the VM until it returns, which it must do once the
// machine is done (m.done, m.exiting).
func (m *machine) background(f func()) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

// run boots the program and waits for it to end.
func (m *machine) run(ctx context.Context) (int, error) {
	start := time.Now()
	patches := m.syscallPatches()
	entry, sp, err := m.load(patches)
	if err != nil {
		return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
	}
	m.patched = m.applyPatches(patches)
	if m.cfg.Ready != nil {
		if err := m.cfg.Ready(); err != nil {
			return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
		}
	}
	c, err := m.newVCPU()
	if err != nil {
		return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
	}
	t, err := m.addThread(c, nil)
	if err != nil {
		return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
	}
	sregs := m.initialSregs(c)
	sregs.GS.Base = t.blkVA
	if err := c.k.SetSregs(&sregs); err != nil {
		return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
	}
	regs := kvm.Regs{RIP: entry, RSP: sp, RFLAGS: rflagsDefault}
	if err := c.k.SetRegs(&regs); err != nil {
		return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
	}
	if m.cfg.Confine {
		if err := confine.Tender(); err != nil {
			return ExitTender, &ExitError{Status: ExitTender, Report: err.Error()}
		}
	}
	m.startClock(c)
	m.stats.bootDone(time.Since(start))

	// SIGQUIT goes to the guest too: its Go runtime then prints every
	// goroutine's stack and exits, as a Go process does — the unikernel's
	// answer to "where is it stuck?".
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	defer signal.Stop(sigs)

	// The guest runs Go code on at most CPUs threads at once; its sysmon
	// and network poller come on top, and each NIC's device thread.
	procs.Reserve(m.cfg.CPUs + 2 + len(m.devs))
	m.startThread(t)
	for _, d := range m.devs {
		m.wg.Add(1)
		go d.run()
	}
	m.background(func() { m.prepareVCPUs(4) })
	if m.prof != nil {
		m.background(m.sampleLoop)
	}

	m.background(func() {
		for {
			select {
			case s := <-sigs:
				m.postProcessSignal(int(s.(syscall.Signal)), siginfo{code: siUser})
			case <-ctx.Done():
				m.exit(ExitTender, &ExitError{Status: ExitTender, Report: "mote: run cancelled: " + ctx.Err().Error()})
				return
			case <-m.done:
				return
			}
		}
	})
	<-m.done
	m.wg.Wait()
	if m.prof != nil {
		if err := m.writeProfile(m.cfg.Profile); err != nil {
			fmt.Fprintf(m.stderr, "mote: %v\n", err)
		}
	}
	if m.cfg.Stats != nil {
		m.stats.write(m.cfg.Stats, time.Since(start))
		for _, d := range m.devs {
			d.CountKicks()
			fmt.Fprintf(m.cfg.Stats, "mote: stats: nic %s: %d frames to the guest, %d from it, %d dropped, %d doorbell exits (answered by KVM)\n",
				d.name, d.RxFrames.Load(), d.TxFrames.Load(), d.Dropped.Load(), d.Kicks.Load())
		}
	}
	if m.fatal != nil {
		return m.fatal.Status, m.fatal
	}
	if m.oomSeen.Load() && m.status != 0 {
		// Out of memory only if the guest died of it, as Go's runtime
		// says on its standard error: a guest that was refused memory once
		// and later failed of something else was reported out of memory.
		if m.guestErr.saw.Load() {
			return ExitOOM, &ExitError{Status: ExitOOM, Report: fmt.Sprintf(
				"mote: guest out of memory: the tender refused memory beyond -m %d MiB, and the guest exited with status %d",
				m.cfg.Memory>>20, m.status)}
		}
		fmt.Fprintf(m.stderr, "mote: the tender refused the guest memory beyond -m %d MiB at least once before it exited with status %d\n",
			m.cfg.Memory>>20, m.status)
	}
	if n := m.stats.outsideABI(); n != "" {
		fmt.Fprintf(m.stderr, "mote: the guest made system calls outside the Mote ABI (answered ENOSYS): %s\n", n)
		for _, h := range abi.Hints(strings.Split(n, ", ")) {
			fmt.Fprintf(m.stderr, "mote: %s\n", h)
		}
	}
	return m.status, nil
}

// exit ends the guest: every thread stops at its next exit or wait.
func (m *machine) exit(status int, fatal *ExitError) {
	m.exitOnce.Do(func() {
		m.status = status
		m.fatal = fatal
		m.exiting.Store(true)
		var one = [8]byte{1}
		unix.Write(m.stopFD, one[:])
		m.mu.Lock()
		for _, t := range m.threads {
			t.kick()
		}
		m.mu.Unlock()
		close(m.done)
	})
}
