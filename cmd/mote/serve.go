package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sys/unix"

	"github.com/moteos/mote/host/spt"
)

const serveHelp = `Runs the services of CONFIG on demand. mote serve listens on each
service's ports itself; the first connection starts the service's
unikernel, which is handed the listening sockets (the connection that
woke it, and any that came while it booted, wait for it rather than
being refused); a unikernel with no open connection for its idle time is
stopped as SIGTERM stops it, and the next connection starts it again. A
service that fails to start, or dies of a failing status, has the
connections that come meanwhile reset, and is retried after 1 s, 2 s,
4 s, … (at most a minute). SIGHUP reads CONFIG again (services added,
removed or changed; a listening socket kept for a port still asked for);
SIGTERM or SIGINT stops every unikernel and mote serve.

CONFIG is JSON:

  {"services": [
    {"name": "web", "image": "httpd.hvt", "target": "hvt", "memory": "64M",
     "ports": ["127.0.0.1:8080:8080"], "idle": "5m",
     "env": ["KEY=VALUE"], "volumes": ["./site:/srv:ro"], "args": ["-addr", ":8080"]}
  ]}

image and volumes are relative to CONFIG's directory; ports are
[IP:]HOSTPORT:PORT (TCP; IP defaults to 127.0.0.1); target is hvt (the
default) or spt; idle defaults to 5m.

flags:
  --metrics ADDR         serve Prometheus metrics at http://ADDR/metrics: per
                         service, up, starts, failures, exits by reason, run
                         times, CPU seconds, resident memory
`

// serviceConfig is one service of mote serve's CONFIG.
type serviceConfig struct {
	Name    string   `json:"name"`
	Image   string   `json:"image"`
	Target  string   `json:"target,omitempty"`
	Memory  string   `json:"memory,omitempty"`
	Ports   []string `json:"ports"`
	Idle    string   `json:"idle,omitempty"`
	Env     []string `json:"env,omitempty"`
	Volumes []string `json:"volumes,omitempty"`
	Args    []string `json:"args,omitempty"`
}

var serviceNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// loadServeConfig reads and checks CONFIG, resolving paths against its
// directory.
func loadServeConfig(path string) ([]serviceConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var c struct {
		Services []serviceConfig `json:"services"`
	}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	dir := filepath.Dir(path)
	seen := map[string]bool{}
	for i := range c.Services {
		s := &c.Services[i]
		bad := func(format string, a ...any) error {
			return fmt.Errorf("%s: service %q: %s", path, s.Name, fmt.Sprintf(format, a...))
		}
		if !serviceNameRE.MatchString(s.Name) || seen[s.Name] {
			return nil, bad("want a unique name of letters, digits, _ . -")
		}
		seen[s.Name] = true
		if s.Target == "" {
			s.Target = "hvt"
		}
		if s.Target != "hvt" && s.Target != "spt" {
			return nil, bad("target %q: want hvt or spt", s.Target)
		}
		if !filepath.IsAbs(s.Image) {
			s.Image = filepath.Join(dir, s.Image)
		}
		if st, err := os.Stat(s.Image); err != nil || !st.Mode().IsRegular() {
			return nil, bad("image %s: not a file (mote serve runs images: mote build -o FILE)", s.Image)
		}
		if len(s.Ports) == 0 {
			return nil, bad("no ports: nothing would start it")
		}
		for _, p := range s.Ports {
			if _, _, err := servePort(p); err != nil {
				return nil, bad("%v", err)
			}
		}
		if s.Idle == "" {
			s.Idle = "5m"
		}
		if d, err := time.ParseDuration(s.Idle); err != nil || d < time.Second {
			return nil, bad("idle %q: want a duration of 1s or more", s.Idle)
		}
		if s.Memory != "" {
			if _, err := parseSize(s.Memory); err != nil {
				return nil, bad("memory: %v", err)
			}
		}
		for j, v := range s.Volumes {
			if src, rest, ok := strings.Cut(v, ":"); ok && !filepath.IsAbs(src) {
				s.Volumes[j] = filepath.Join(dir, src) + ":" + rest
			}
		}
	}
	return c.Services, nil
}

// servePort reads [IP:]HOSTPORT:PORT into the host address and the guest port.
func servePort(p string) (host, guest string, err error) {
	i := strings.LastIndex(p, ":")
	if i < 0 {
		return "", "", fmt.Errorf("port %q: want [IP:]HOSTPORT:PORT", p)
	}
	host, guest = p[:i], p[i+1:]
	if n, err := strconv.ParseUint(guest, 10, 16); err != nil || n == 0 {
		return "", "", fmt.Errorf("port %q: bad guest port", p)
	}
	if !strings.Contains(host, ":") {
		host = "127.0.0.1:" + host
	}
	if _, _, err := net.SplitHostPort(host); err != nil {
		return "", "", fmt.Errorf("port %q: %v", p, err)
	}
	return host, guest, nil
}

// demand is mote serve: its services, and one epoll set over every
// listening socket, each armed once (EPOLLONESHOT) until its service
// runs.
type demand struct {
	self  string // mote, to run each unikernel with
	log   io.Writer
	epfd  int
	mx    *serveMetrics
	mu    sync.Mutex
	svcs  map[string]*service
	byFD  map[int]*service
	socks map[string]*os.File // listening sockets by host address, kept across reloads
}

// service is one service's state.
type service struct {
	cfg      serviceConfig
	socks    []*os.File    // its listening sockets, in cfg.Ports' order
	guest    []string      // the guest port of each
	cmd      *exec.Cmd     // the running unikernel, or nil
	ended    chan struct{} // closed when cmd has ended
	stopping bool          // mote serve asked it to stop
	removed  bool          // no longer in CONFIG
	failures int           // failed starts or runs in a row
	cpuDone  float64       // CPU seconds of ended runs (mote and its guest)
	retryAt  time.Time     // no start before this, after a failure
}

func runServe(args []string, stdout, stderr io.Writer) (int, error) {
	fs := newFlags("serve", stderr)
	metricsAddr := fs.String("metrics", "", "ADDR")
	if err := parse(fs, args); err != nil {
		return exitUsage, err
	}
	if fs.NArg() != 1 {
		return exitUsage, usagef("want one CONFIG")
	}
	config := fs.Arg(0)
	cfgs, err := loadServeConfig(config)
	if err != nil {
		return exitUsage, err
	}
	self, err := os.Executable()
	if err != nil {
		return exitError, err
	}
	// One descriptor per port: a host of services needs more than the
	// usual 1024.
	var rl unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_NOFILE, &rl) == nil && rl.Cur < rl.Max {
		rl.Cur = rl.Max
		unix.Setrlimit(unix.RLIMIT_NOFILE, &rl)
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return exitError, err
	}
	defer unix.Close(epfd)
	s := &demand{self: self, log: stderr, epfd: epfd, svcs: map[string]*service{}, byFD: map[int]*service{}, socks: map[string]*os.File{}}
	if s.mx, err = startServeMetrics(*metricsAddr, s); err != nil {
		return exitUsage, err
	}
	if err := s.apply(cfgs); err != nil {
		return exitError, err
	}
	// Reading a large CONFIG leaves garbage that would stay mapped while
	// every service idles: hand it back now.
	debug.FreeOSMemory()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, unix.SIGHUP, unix.SIGTERM, unix.SIGINT)
	go s.loop()
	for sig := range sigs {
		if sig != unix.SIGHUP {
			fmt.Fprintf(s.log, "mote serve: %v: stopping every service\n", sig)
			s.stopAll()
			return 0, nil
		}
		cfgs, err := loadServeConfig(config)
		if err == nil {
			err = s.apply(cfgs)
		}
		debug.FreeOSMemory()
		if err != nil {
			fmt.Fprintf(s.log, "mote serve: reload: %v (the services run on as they were)\n", err)
		} else {
			fmt.Fprintf(s.log, "mote serve: reloaded %s: %d services\n", config, len(cfgs))
		}
	}
	return 0, nil
}

// apply makes the running services those of cfgs: new ones listen,
// removed ones stop, changed ones stop and listen anew (on the sockets
// they had, where the address is the same).
func (s *demand) apply(cfgs []serviceConfig) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	want := map[string]serviceConfig{}
	for _, c := range cfgs {
		want[c.Name] = c
	}
	// Listen first, so that a port that cannot be had changes nothing.
	var opened []string
	for _, c := range cfgs {
		for _, p := range c.Ports {
			host, _, _ := servePort(p)
			if s.socks[host] != nil {
				continue
			}
			l, err := net.Listen("tcp", host)
			if err != nil {
				for _, h := range opened {
					s.socks[h].Close()
					delete(s.socks, h)
				}
				return fmt.Errorf("service %s: %w", c.Name, err)
			}
			f, _ := l.(*net.TCPListener).File()
			l.Close()
			s.socks[host] = f
			opened = append(opened, host)
		}
	}
	for name, old := range s.svcs {
		if c, ok := want[name]; ok && reflect.DeepEqual(c, old.cfg) {
			continue
		}
		s.retire(old)
		delete(s.svcs, name)
	}
	inUse := map[string]bool{}
	for _, c := range cfgs {
		for _, p := range c.Ports {
			host, _, _ := servePort(p)
			inUse[host] = true
		}
		if s.svcs[c.Name] != nil {
			continue
		}
		sv := &service{cfg: c}
		for _, p := range c.Ports {
			host, guest, _ := servePort(p)
			sv.socks = append(sv.socks, s.socks[host])
			sv.guest = append(sv.guest, guest)
		}
		s.svcs[c.Name] = sv
		for _, f := range sv.socks {
			fd := int(f.Fd())
			s.byFD[fd] = sv
			ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(fd)}
			if err := unix.EpollCtl(s.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
				unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, fd, &ev)
			}
		}
		s.mx.service(c.Name)
	}
	for host, f := range s.socks {
		if !inUse[host] {
			unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, int(f.Fd()), nil)
			delete(s.byFD, int(f.Fd()))
			f.Close()
			delete(s.socks, host)
		}
	}
	return nil
}

// retire stops a service that left CONFIG (or changed); its unikernel
// gets SIGTERM. s.mu is held.
func (s *demand) retire(sv *service) {
	sv.removed = true
	for _, f := range sv.socks {
		if s.byFD[int(f.Fd())] == sv {
			delete(s.byFD, int(f.Fd()))
			unix.EpollCtl(s.epfd, unix.EPOLL_CTL_DEL, int(f.Fd()), nil)
		}
	}
	if sv.cmd != nil {
		sv.stopping = true
		sv.cmd.Process.Signal(unix.SIGTERM)
	}
}

// loop waits for connections on sockets whose service is not running.
func (s *demand) loop() {
	events := make([]unix.EpollEvent, 128)
	for {
		n, err := unix.EpollWait(s.epfd, events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		for _, e := range events[:n] {
			s.wake(int(e.Fd))
		}
	}
}

// wake handles a connection waiting on fd: starts its service, or resets
// the connection while the service waits to be retried.
func (s *demand) wake(fd int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	sv := s.byFD[fd]
	if sv == nil || sv.cmd != nil {
		return // re-armed when the unikernel ends
	}
	if wait := time.Until(sv.retryAt); wait > 0 {
		resetWaiting(fd)
		time.AfterFunc(min(wait, 100*time.Millisecond), func() { s.arm(sv) })
		return
	}
	s.start(sv)
}

// resetWaiting accepts the connections waiting on a listening socket and
// resets them: the service cannot serve them now.
func resetWaiting(fd int) {
	// Non-blocking (a flag of the socket that mote's own copies share,
	// and that Go sets on them too): take only what waits.
	unix.SetNonblock(fd, true)
	for {
		c, _, err := unix.Accept4(fd, unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC)
		if err != nil {
			return
		}
		unix.SetsockoptLinger(c, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
		unix.Close(c)
	}
}

// arm waits again for connections on a service's sockets.
func (s *demand) arm(sv *service) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if sv.removed || sv.cmd != nil {
		return
	}
	for _, f := range sv.socks {
		ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(f.Fd())}
		unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, int(f.Fd()), &ev)
	}
}

// start runs a service's unikernel with its listening sockets as
// descriptors 3, 4, …; s.mu is held.
func (s *demand) start(sv *service) {
	c := sv.cfg
	args := []string{"run", "-t", c.Target, "--net", "user", "--wait-ports", "30s", "--idle-exit", c.Idle}
	if c.Memory != "" {
		args = append(args, "-m", c.Memory)
	}
	for _, e := range c.Env {
		args = append(args, "--env="+e)
	}
	for _, v := range c.Volumes {
		args = append(args, "-v="+v)
	}
	for i, g := range sv.guest {
		args = append(args, fmt.Sprintf("-p=fd:%d:%s", 3+i, g))
	}
	args = append(append(args, c.Image, "--"), c.Args...)
	cmd := exec.Command(s.self, args...)
	cmd.ExtraFiles = sv.socks
	pw := &prefixWriter{w: s.log, prefix: c.Name + ": "}
	cmd.Stdout, cmd.Stderr = pw, pw
	began := time.Now()
	if err := cmd.Start(); err != nil {
		fmt.Fprintf(s.log, "mote serve: %s: start: %v\n", c.Name, err)
		s.failed(sv)
		return
	}
	sv.cmd, sv.stopping = cmd, false
	ended := make(chan struct{})
	sv.ended = ended
	s.mx.started(c.Name)
	fmt.Fprintf(s.log, "mote serve: %s: started (pid %d)\n", c.Name, cmd.Process.Pid)
	go func() {
		cmd.Wait()
		defer close(ended)
		status := cmd.ProcessState.ExitCode()
		if ws, ok := cmd.ProcessState.Sys().(unix.WaitStatus); ok && ws.Signaled() {
			status = 128 + int(ws.Signal())
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		sv.cmd = nil
		// wait4's usage counts the guest process too (mote waited for it).
		sv.cpuDone += (cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()).Seconds()
		s.mx.exited(c.Name, status, time.Since(began))
		// Status 143: it ended on SIGTERM (idle, or asked), as a Go
		// program does that does not catch it.
		if status == 0 || status == 143 || sv.stopping {
			sv.failures = 0
			fmt.Fprintf(s.log, "mote serve: %s: stopped after %v (status %d)\n", c.Name, time.Since(began).Round(time.Millisecond), status)
		} else {
			fmt.Fprintf(s.log, "mote serve: %s: failed: status %d (%s)\n", c.Name, status, exitReason(status, nil))
			s.failed(sv)
		}
		pw.flush()
		if !sv.removed {
			for _, f := range sv.socks {
				ev := unix.EpollEvent{Events: unix.EPOLLIN | unix.EPOLLONESHOT, Fd: int32(f.Fd())}
				unix.EpollCtl(s.epfd, unix.EPOLL_CTL_MOD, int(f.Fd()), &ev)
			}
		}
	}()
}

// failed sets a service's next try after a failure: 1 s, 2 s, 4 s, … a
// minute at most. s.mu is held.
func (s *demand) failed(sv *service) {
	sv.failures++
	back := min(time.Second<<min(sv.failures-1, 6), time.Minute)
	sv.retryAt = time.Now().Add(back)
	s.mx.failedStart(sv.cfg.Name)
	fmt.Fprintf(s.log, "mote serve: %s: next start in %v at the earliest; connections meanwhile are reset\n", sv.cfg.Name, back)
}

// stopAll stops every unikernel, as mote stop would, and waits for them.
func (s *demand) stopAll() {
	s.mu.Lock()
	var ends []chan struct{}
	var cmds []*exec.Cmd
	for _, sv := range s.svcs {
		sv.removed = true
		if sv.cmd != nil {
			sv.stopping = true
			sv.cmd.Process.Signal(unix.SIGTERM)
			ends, cmds = append(ends, sv.ended), append(cmds, sv.cmd)
		}
	}
	s.mu.Unlock()
	deadline := time.Now().Add(spt.StopGrace + 2*time.Second)
	for i, e := range ends {
		select {
		case <-e:
		case <-time.After(time.Until(deadline)):
			cmds[i].Process.Kill() // mote kills its guest after StopGrace itself; this is the last resort
			<-e
		}
	}
}

// prefixWriter writes each line of a unikernel's output with its
// service's name in front.
type prefixWriter struct {
	mu     sync.Mutex
	w      io.Writer
	prefix string
	buf    []byte
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.buf = append(p.buf, b...)
	for {
		i := strings.IndexByte(string(p.buf), '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(p.w, "%s%s", p.prefix, p.buf[:i+1])
		p.buf = p.buf[i+1:]
	}
	return len(b), nil
}

func (p *prefixWriter) flush() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.buf) > 0 {
		fmt.Fprintf(p.w, "%s%s\n", p.prefix, p.buf)
		p.buf = nil
	}
}

// serveMetrics are mote serve's figures, per service.
type serveMetrics struct {
	d        *demand
	up       *prometheus.GaugeVec
	starts   *prometheus.CounterVec
	failures *prometheus.CounterVec
	exits    *prometheus.CounterVec
	runTime  *prometheus.HistogramVec
}

var (
	descServeCPU = prometheus.NewDesc("mote_serve_cpu_seconds_total", "CPU time of the service's unikernels (mote and its guest), ended runs and the running one.", []string{"service"}, nil)
	descServeRSS = prometheus.NewDesc("mote_serve_resident_bytes", "Resident memory of the service's running unikernel (0 when none runs).", []string{"service"}, nil)
)

func startServeMetrics(addr string, d *demand) (*serveMetrics, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	m := &serveMetrics{
		d:        d,
		up:       prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "mote_serve_up", Help: "1 while the service's unikernel runs."}, []string{"service"}),
		starts:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mote_serve_starts_total", Help: "Starts of the service's unikernel."}, []string{"service"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mote_serve_failures_total", Help: "Failed starts or runs (a failing status)."}, []string{"service"}),
		exits:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mote_serve_exits_total", Help: "Exits by reason, as mote run --metrics names them."}, []string{"service", "reason"}),
		runTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "mote_serve_run_seconds", Help: "How long each run of the service's unikernel lasted, from its start to its end.",
			Buckets: prometheus.ExponentialBuckets(0.1, 4, 10)}, []string{"service"}),
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(m.up, m.starts, m.failures, m.exits, m.runTime, m)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	go (&http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}).Serve(ln)
	return m, nil
}

func (m *serveMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- descServeCPU
	ch <- descServeRSS
}

// Collect reads the running unikernels' usage from /proc when scraped.
func (m *serveMetrics) Collect(ch chan<- prometheus.Metric) {
	m.d.mu.Lock()
	defer m.d.mu.Unlock()
	for name, sv := range m.d.svcs {
		cpu, rss := sv.cpuDone, 0.0
		if sv.cmd != nil {
			u := usageOf(sv.cmd.Process.Pid)
			cpu += float64(u.ticks) / 100
			rss = float64(u.rss)
		}
		ch <- prometheus.MustNewConstMetric(descServeCPU, prometheus.CounterValue, cpu, name)
		ch <- prometheus.MustNewConstMetric(descServeRSS, prometheus.GaugeValue, rss, name)
	}
}

func (m *serveMetrics) service(name string) {
	if m != nil {
		m.up.WithLabelValues(name).Set(0)
		m.starts.WithLabelValues(name)
	}
}

func (m *serveMetrics) started(name string) {
	if m != nil {
		m.up.WithLabelValues(name).Set(1)
		m.starts.WithLabelValues(name).Inc()
	}
}

func (m *serveMetrics) exited(name string, status int, ran time.Duration) {
	if m != nil {
		m.up.WithLabelValues(name).Set(0)
		m.exits.WithLabelValues(name, exitReason(status, nil)).Inc()
		m.runTime.WithLabelValues(name).Observe(ran.Seconds())
	}
}

func (m *serveMetrics) failedStart(name string) {
	if m != nil {
		m.failures.WithLabelValues(name).Inc()
	}
}
