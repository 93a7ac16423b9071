package microvm

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
)

// DefaultKernel finds the newest Debian kernel in /boot and its modules
// directory, e.g. /boot/vmlinuz-6.1.0-57-amd64 and
// /lib/modules/6.1.0-57-amd64. It fails when there is none.
func DefaultKernel() (bzImage, modulesDir string, err error) {
	bzs, _ := filepath.Glob("/boot/vmlinuz-*")
	// Newest last: compare versions field by field, numerically.
	sort.Slice(bzs, func(i, j int) bool { return versionLess(bzs[i], bzs[j]) })
	for i := len(bzs) - 1; i >= 0; i-- {
		ver := strings.TrimPrefix(filepath.Base(bzs[i]), "vmlinuz-")
		dir := filepath.Join("/lib/modules", ver)
		if _, err := os.Stat(filepath.Join(dir, "modules.dep")); err == nil {
			return bzs[i], dir, nil
		}
	}
	return "", "", errors.New("microvm: no /boot/vmlinuz-VERSION with a /lib/modules/VERSION/modules.dep (apt-get install linux-image-amd64)")
}

func versionLess(a, b string) bool {
	split := func(s string) []string {
		return strings.FieldsFunc(s, func(r rune) bool { return r == '.' || r == '-' })
	}
	fa, fb := split(a), split(b)
	for i := 0; i < len(fa) && i < len(fb); i++ {
		na, ea := strconv.Atoi(fa[i])
		nb, eb := strconv.Atoi(fb[i])
		switch {
		case ea == nil && eb == nil && na != nb:
			return na < nb
		case (ea != nil || eb != nil) && fa[i] != fb[i]:
			return fa[i] < fb[i]
		}
	}
	return len(fa) < len(fb)
}

// Kernel writes the uncompressed vmlinux ELF inside bzImage to outPath, for
// QEMU to boot through its PVH entry. An outPath newer than bzImage is
// taken as already extracted and kept. The file is written under a
// temporary name and renamed, so concurrent callers never see half of it.
func Kernel(bzImage, outPath string) error {
	bi, err := os.Stat(bzImage)
	if err != nil {
		return err
	}
	if oi, err := os.Stat(outPath); err == nil && oi.Size() > 0 && oi.ModTime().After(bi.ModTime()) {
		return nil
	}
	img, err := os.ReadFile(bzImage)
	if err != nil {
		return err
	}
	payload, err := bzPayload(img)
	if err != nil {
		return fmt.Errorf("microvm: %s: %w", bzImage, err)
	}
	var vmlinux []byte
	switch {
	case bytes.HasPrefix(payload, xzMagic):
		vmlinux, err = unxz(payload)
	case bytes.HasPrefix(payload, []byte{0x1f, 0x8b}):
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(payload)); err == nil {
			zr.Multistream(false) // the kernel appends its size after the stream
			vmlinux, err = io.ReadAll(zr)
		}
	default:
		err = fmt.Errorf("payload is neither XZ nor gzip (starts % x)", payload[:min(6, len(payload))])
	}
	if err != nil {
		return fmt.Errorf("microvm: %s: %w", bzImage, err)
	}
	if !bytes.HasPrefix(vmlinux, []byte(elf.ELFMAG)) {
		return fmt.Errorf("microvm: %s: decompressed payload is not an ELF file", bzImage)
	}
	return writeAtomic(outPath, vmlinux, 0o644)
}

var xzMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0}

// bzPayload returns the compressed kernel inside a bzImage: the x86 boot
// protocol (2.08+) gives its offset and length in the setup header. For
// older or odd images it falls back to the first XZ stream in the file.
func bzPayload(img []byte) ([]byte, error) {
	if len(img) > 0x250 && string(img[0x202:0x206]) == "HdrS" && binary.LittleEndian.Uint16(img[0x206:]) >= 0x208 {
		setup := int(img[0x1f1])
		if setup == 0 {
			setup = 4
		}
		start := (setup+1)*512 + int(binary.LittleEndian.Uint32(img[0x248:]))
		end := start + int(binary.LittleEndian.Uint32(img[0x24c:]))
		if start < end && end <= len(img) {
			return img[start:end], nil
		}
	}
	if i := bytes.Index(img, xzMagic); i >= 0 {
		return img[i:], nil
	}
	return nil, errors.New("not a bzImage (no boot header, no XZ stream)")
}

// unxz decodes the kernel's .xz stream with Debian's xz (xz-utils), which
// knows the x86 BCJ filter Debian's kernels are compressed with; the Go
// XZ libraries do not. The kernel appends its size after the stream, which
// --single-stream ignores.
func unxz(s []byte) ([]byte, error) {
	cmd := exec.Command("xz", "--decompress", "--stdout", "--single-stream")
	cmd.Stdin = bytes.NewReader(s)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("xz: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
	}
	return out, nil
}

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// InitramfsConfig describes an initramfs; Initramfs covers the usual case.
type InitramfsConfig struct {
	// Init is the /init binary. Empty: BuildInit builds
	// bench/guests/microinit into a temporary file (needs the go command
	// and this module's source).
	Init string
	// App is the program to run, statically linked (CGO_ENABLED=0).
	App string
	// Modules are kernel module names (virtio_mmio, virtio_net); their
	// dependencies are added from modules.dep, in load order.
	Modules []string
	// ModulesDir is /lib/modules/VERSION; empty: DefaultKernel's.
	ModulesDir string
	// NoGzip leaves the cpio archive uncompressed (the kernel unpacks it
	// without emulated gunzip; the file is larger).
	NoGzip bool
	// Files are more files for the app, by their path in the initramfs
	// (relative, under directories that Dirs lists first) and the host
	// file each is copied from.
	Files map[string]string
	// Dirs are directories to create, parents first.
	Dirs []string
}

// Initramfs writes to out a gzip'd cpio (newc) initramfs with a freshly
// built microinit as /init, app as /app, and the named kernel modules
// plus their dependencies in /modules (with /modules/order for /init).
// Module names are resolved in DefaultKernel's modules directory; use
// InitramfsConfig for another directory or a prebuilt /init.
func Initramfs(out, app string, modules []string) error {
	return InitramfsConfig{App: app, Modules: modules}.Write(out)
}

// Write writes the initramfs to out.
func (c InitramfsConfig) Write(out string) error {
	if err := checkStatic(c.App); err != nil {
		return err
	}
	init := c.Init
	if init == "" {
		dir, err := os.MkdirTemp("", "microinit")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		init = filepath.Join(dir, "init")
		if err := BuildInit(init); err != nil {
			return err
		}
	}
	var mods []string
	if len(c.Modules) > 0 {
		dir := c.ModulesDir
		if dir == "" {
			var err error
			if _, dir, err = DefaultKernel(); err != nil {
				return err
			}
		}
		var err error
		if mods, err = ResolveModules(dir, c.Modules); err != nil {
			return err
		}
	}

	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if !c.NoGzip {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	cw := &cpioWriter{w: bufio.NewWriter(w)}
	// The kernel opens /dev/console for init's stdin, stdout and stderr
	// before /init runs, so the node must be in the archive.
	cw.dir("dev")
	cw.node("dev/console", syscall.S_IFCHR|0o600, 5, 1, nil)
	cw.dir("proc")
	if err := cw.file("init", init, 0o755); err != nil {
		return err
	}
	if err := cw.file("app", c.App, 0o755); err != nil {
		return err
	}
	for _, d := range c.Dirs {
		cw.dir(d)
	}
	names := make([]string, 0, len(c.Files))
	for name := range c.Files {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if err := cw.file(name, c.Files[name], 0o755); err != nil {
			return err
		}
	}
	if len(mods) > 0 {
		cw.dir("modules")
		var order strings.Builder
		for _, m := range mods {
			name := filepath.Base(m)
			if err := cw.file("modules/"+name, m, 0o644); err != nil {
				return err
			}
			order.WriteString(name + "\n")
		}
		cw.node("modules/order", syscall.S_IFREG|0o644, 0, 0, []byte(order.String()))
	}
	if err := cw.close(); err != nil {
		return err
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return err
		}
	}
	return writeAtomic(out, buf.Bytes(), 0o644)
}

// checkStatic fails for a dynamically linked ELF: the initramfs has no
// loader or libc, and the kernel's complaint would be a bare ENOENT.
func checkStatic(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("microvm: app: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("microvm: app %s is dynamically linked; build it with CGO_ENABLED=0", path)
		}
	}
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("microvm: app %s is for %v, not x86-64", path, f.Machine)
	}
	return nil
}

// BuildInit builds bench/guests/microinit (static, linux/amd64) to out.
// It runs the go command in this module's root: the directory of this
// source file when it exists (go test, go run, binaries built in the
// tree), else the module containing the working directory.
func BuildInit(out string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "build", "-trimpath", "-o", abs, "./bench/guests/microinit")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("microvm: building microinit: %v\n%s", err, b)
	}
	return nil
}

func moduleRoot() (string, error) {
	isRoot := func(dir string) bool {
		_, err := os.Stat(filepath.Join(dir, "bench", "guests", "microinit", "main.go"))
		return err == nil
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		if dir := filepath.Dir(filepath.Dir(filepath.Dir(file))); isRoot(dir) {
			return dir, nil
		}
	}
	b, err := exec.Command("go", "env", "GOMOD").Output()
	if dir := filepath.Dir(strings.TrimSpace(string(b))); err == nil && isRoot(dir) {
		return dir, nil
	}
	return "", errors.New("microvm: cannot find the mote module's source to build microinit; pass InitramfsConfig.Init")
}

// ResolveModules returns the files of the named modules and of all they
// depend on, dependencies first, from dir/modules.dep. Names may use '-'
// or '_' alike, as modprobe allows.
func ResolveModules(dir string, names []string) ([]string, error) {
	dep, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, fmt.Errorf("microvm: %w", err)
	}
	modName := func(path string) string {
		b := filepath.Base(path)
		if i := strings.Index(b, ".ko"); i >= 0 {
			b = b[:i]
		}
		return strings.ReplaceAll(b, "-", "_")
	}
	paths := map[string]string{}
	deps := map[string][]string{}
	for _, line := range strings.Split(string(dep), "\n") {
		mod, rest, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n := modName(mod)
		paths[n] = mod
		for _, d := range strings.Fields(rest) {
			deps[n] = append(deps[n], modName(d))
		}
	}
	var order []string
	state := map[string]int{} // 1: visiting, 2: done
	var visit func(n string) error
	visit = func(n string) error {
		switch state[n] {
		case 1:
			return fmt.Errorf("microvm: module dependency cycle through %s", n)
		case 2:
			return nil
		}
		p, ok := paths[n]
		if !ok {
			return fmt.Errorf("microvm: module %s not in %s/modules.dep", n, dir)
		}
		if !strings.HasSuffix(p, ".ko") {
			return fmt.Errorf("microvm: module %s is compressed (%s); microinit loads plain .ko files only", n, p)
		}
		state[n] = 1
		for _, d := range deps[n] {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[n] = 2
		if !filepath.IsAbs(p) {
			p = filepath.Join(dir, p)
		}
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		if err := visit(modName(n)); err != nil {
			return nil, err
		}
	}
	return order, nil
}

// cpioWriter writes the "newc" cpio format the kernel unpacks: per entry
// a 110-byte ASCII header ("070701" and 13 8-digit hex fields), the NUL
// terminated name, the data, each padded to 4 bytes; "TRAILER!!!" ends it.
// Times and owners are zero so that archives are reproducible.
type cpioWriter struct {
	w   *bufio.Writer
	ino uint32
	off int
	err error
}

func (c *cpioWriter) dir(name string) { c.node(name, syscall.S_IFDIR|0o755, 0, 0, nil) }

func (c *cpioWriter) file(name, src string, perm uint32) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("microvm: %w", err)
	}
	c.node(name, syscall.S_IFREG|perm, 0, 0, b)
	return nil
}

func (c *cpioWriter) node(name string, mode, rmajor, rminor uint32, data []byte) {
	c.ino++
	nlink := 1
	if mode&syscall.S_IFMT == syscall.S_IFDIR {
		nlink = 2
	}
	c.write(fmt.Appendf(nil, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		c.ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rmajor, rminor, len(name)+1, 0))
	c.write(append([]byte(name), 0))
	c.pad()
	c.write(data)
	c.pad()
}

func (c *cpioWriter) write(b []byte) {
	if c.err == nil {
		_, c.err = c.w.Write(b)
		c.off += len(b)
	}
}

func (c *cpioWriter) pad() { c.write(make([]byte, (4-c.off%4)%4)) }

func (c *cpioWriter) close() error {
	c.ino = 0
	c.node("TRAILER!!!", 0, 0, 0, nil)
	if c.err != nil {
		return c.err
	}
	return c.w.Flush()
}

// Net selects the guest's network.
type Net int

const (
	// NetNone gives the guest no network device.
	NetNone Net = iota
	// NetUser is QEMU's user-mode network (slirp): the guest is
	// 10.0.2.15/24 behind gateway 10.0.2.2, and 127.0.0.1:HostPort on the
	// host is forwarded to the guest's GuestPort (TCP).
	NetUser
	// NetTap attaches the guest to the host's existing tap interface Tap;
	// set IP (and Gateway) to suit it.
	NetTap
)

// Config describes one microVM run; zero fields take the defaults given.
type Config struct {
	QEMU      string // "": qemu-system-x86_64 from $PATH
	Kernel    string // the vmlinux from Kernel (a bzImage boots too, seconds slower)
	Initrd    string // from Initramfs
	MemoryMiB int    // -m; 0: 256
	CPUs      int    // -smp; 0: 1
	// Accel is "tcg" (default) or "kvm". Under the project's nested
	// kvm-pvm host the Linux kernel does not boot with kvm.
	Accel string
	// TSCkHz goes on the kernel command line as tsc_early_khz (needed
	// under TCG). 0: HostTSCkHz(), left out if that fails; <0: left out.
	TSCkHz int
	// Verbose keeps the kernel's boot log on the console (no "quiet").
	Verbose bool

	Net       Net
	HostPort  int    // NetUser: host TCP port on 127.0.0.1...
	GuestPort int    // ...forwarded to this guest port
	Tap       string // NetTap: host tap interface name
	// IP is eth0's address as ADDR/PREFIX and Gateway its default route;
	// with NetUser they default to 10.0.2.15/24 and 10.0.2.2.
	IP, Gateway string

	Append string   // more kernel parameters
	Args   []string // the app's arguments
}

// Command returns the QEMU command for cfg. Its stdout carries the serial
// console: the app's stdout and stderr, and kernel messages. Set the Cmd's
// Stdout (and Stderr, for QEMU's own errors) before starting it. QEMU exits
// when the app exits (/init powers off) or the kernel panics.
func Command(cfg Config) *exec.Cmd {
	qemu := cfg.QEMU
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	mem := cfg.MemoryMiB
	if mem <= 0 {
		mem = 256
	}
	cpus := max(cfg.CPUs, 1)
	accel, cpu := "tcg", "max"
	if cfg.Accel == "kvm" {
		accel, cpu = "kvm", "host"
	}
	tsc := cfg.TSCkHz
	if tsc == 0 {
		if k, err := HostTSCkHz(); err == nil {
			tsc = k
		}
	}

	// panic=-1: a kernel panic (say, out of memory) reboots at once, which
	// -no-reboot turns into QEMU's exit instead of a hang.
	kargs := []string{"console=ttyS0", "panic=-1"}
	if !cfg.Verbose {
		kargs = append(kargs, "quiet")
	}
	if tsc > 0 {
		kargs = append(kargs, "tsc_early_khz="+strconv.Itoa(tsc))
	}
	ip, gw := cfg.IP, cfg.Gateway
	if cfg.Net == NetUser {
		if ip == "" {
			ip = "10.0.2.15/24"
		}
		if gw == "" {
			gw = "10.0.2.2"
		}
	}
	if cfg.Net != NetNone && ip != "" {
		kargs = append(kargs, "mote.ip="+ip)
		if gw != "" {
			kargs = append(kargs, "mote.gw="+gw)
		}
	}
	if cfg.Append != "" {
		kargs = append(kargs, cfg.Append)
	}
	if len(cfg.Args) > 0 {
		// The kernel passes the words after "--" to init as its arguments.
		// It splits on spaces and honours double quotes only.
		kargs = append(kargs, "--")
		for _, a := range cfg.Args {
			if a == "" || strings.ContainsAny(a, " \t") {
				a = `"` + a + `"`
			}
			kargs = append(kargs, a)
		}
	}

	args := []string{
		// acpi=on: the kernel finds the virtio-mmio devices only through
		// ACPI. pit=on: under TCG the microvm machine has no PIT otherwise,
		// and the kernel's timer setup wants one.
		"-M", "microvm,pit=on,acpi=on",
		"-accel", accel, "-cpu", cpu,
		"-m", strconv.Itoa(mem), "-smp", strconv.Itoa(cpus),
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio",
		"-kernel", cfg.Kernel,
	}
	if cfg.Initrd != "" {
		args = append(args, "-initrd", cfg.Initrd)
	}
	args = append(args, "-append", strings.Join(kargs, " "))
	switch cfg.Net {
	case NetUser:
		nd := "user,id=n0"
		if cfg.HostPort > 0 && cfg.GuestPort > 0 {
			nd += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", cfg.HostPort, cfg.GuestPort)
		}
		args = append(args, "-netdev", nd, "-device", "virtio-net-device,netdev=n0")
	case NetTap:
		args = append(args, "-netdev", "tap,id=n0,ifname="+cfg.Tap+",script=no,downscript=no",
			"-device", "virtio-net-device,netdev=n0")
	}
	return exec.Command(qemu, args...)
}

// HostTSCkHz returns the host's TSC frequency in kHz, which under TCG is
// also the guest's. It tries, in order: sysfs's tsc_freq_khz (some
// kernels), the kernel log's calibration lines (/dev/kmsg, root or
// CAP_SYSLOG), the "@ N.NNGHz" of /proc/cpuinfo's model name, and its
// "cpu MHz" (the current clock, which equals the TSC's on VMs and on hosts
// without frequency scaling).
func HostTSCkHz() (int, error) {
	if b, err := os.ReadFile("/sys/devices/system/cpu/cpu0/tsc_freq_khz"); err == nil {
		if k, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && k > 0 {
			return k, nil
		}
	}
	if k := kmsgTSC(); k > 0 {
		return k, nil
	}
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0, fmt.Errorf("microvm: host TSC frequency: %w", err)
	}
	var mhz float64
	for _, line := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "model name":
			if i := strings.LastIndex(v, "@"); i >= 0 {
				if g, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v[i+1:]), "GHz"), 64); err == nil && g > 0 {
					return int(g * 1e6), nil
				}
			}
		case "cpu MHz":
			if mhz == 0 {
				mhz, _ = strconv.ParseFloat(strings.TrimSpace(v), 64)
			}
		}
	}
	if mhz > 0 {
		return int(mhz * 1000), nil
	}
	return 0, errors.New("microvm: host TSC frequency not found (sysfs, kernel log, /proc/cpuinfo)")
}

// kmsgTSC reads the kernel log, without blocking, for "tsc: Refined TSC
// clocksource calibration: N MHz" (preferred) or "tsc: Detected N MHz
// processor"; 0 if neither is there.
func kmsgTSC() int {
	fd, err := syscall.Open("/dev/kmsg", syscall.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return 0
	}
	defer syscall.Close(fd)
	var refined, detected float64
	buf := make([]byte, 8192)
	for {
		n, err := syscall.Read(fd, buf) // one record per read
		if err == syscall.EPIPE {
			continue // records overwritten under us: go on with the next
		}
		if err != nil || n <= 0 {
			break
		}
		_, msg, _ := strings.Cut(string(buf[:n]), ";")
		if v, ok := strings.CutPrefix(msg, "tsc: Refined TSC clocksource calibration: "); ok {
			refined, _ = strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "MHz")), 64)
		} else if v, ok := strings.CutPrefix(msg, "tsc: Detected "); ok {
			if f := strings.Fields(v); len(f) > 1 && f[1] == "MHz" {
				detected, _ = strconv.ParseFloat(f[0], 64)
			}
		}
	}
	if refined > 0 {
		return int(refined * 1000)
	}
	return int(detected * 1000)
}
