package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/moteos/mote/host/ringdev"
)

// mote run --metrics ADDR: the guest's figures for Prometheus, served by
// mote for as long as it runs (a background instance's runner: across
// restarts). Figures of the guest's process are those of mote and its
// descendants (on spt the guest is mote's child), as the host counts them.

type metrics struct {
	srv     *http.Server
	up      prometheus.Gauge
	starts  prometheus.Counter
	exits   *prometheus.CounterVec
	runTime prometheus.Histogram
	console atomic.Uint64

	mu   sync.Mutex
	nics map[string]*ringdev.Device
}

// startMetrics listens on addr at once (a bad address fails the run
// before the guest starts) and serves /metrics. With no address it
// returns nil, whose methods leave the run as it is.
func startMetrics(addr, name, image, target string) (*metrics, error) {
	if addr == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics: %w", err)
	}
	m := &metrics{nics: map[string]*ringdev.Device{}}
	labels := prometheus.Labels{"instance_name": name, "image": image, "target": target}
	reg := prometheus.NewRegistry()
	f := prometheus.WrapRegistererWith(labels, reg)
	m.up = prometheus.NewGauge(prometheus.GaugeOpts{Name: "mote_guest_up", Help: "1 while the guest runs."})
	m.starts = prometheus.NewCounter(prometheus.CounterOpts{Name: "mote_guest_starts_total", Help: "Guest starts (restarts included)."})
	m.exits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "mote_guest_exits_total",
		Help: "Guest exits by reason: exit (status 0), failure, oom (137), fault (139), strict (159), signal (128+n), start (125: mote could not start it)."}, []string{"reason"})
	m.runTime = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "mote_guest_run_seconds", Help: "How long each run of the guest lasted.",
		Buckets: prometheus.ExponentialBuckets(0.01, 4, 10)})
	f.MustRegister(m.up, m.starts, m.exits, m.runTime, m)
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	m.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go m.srv.Serve(ln)
	return m, nil
}

func (m *metrics) close() {
	if m != nil {
		m.srv.Close()
	}
}

// onNIC is what hvt's and spt's OnNIC get: nil without metrics.
func (m *metrics) onNIC() func(string, *ringdev.Device) {
	if m == nil {
		return nil
	}
	return m.addNIC
}

// addNIC adds a NIC's counters to the figures.
func (m *metrics) addNIC(name string, d *ringdev.Device) {
	m.mu.Lock()
	m.nics[name] = d
	m.mu.Unlock()
}

// counting wraps the guest's console output so its bytes are counted.
func (m *metrics) counting(w io.Writer) io.Writer {
	if m == nil {
		return w
	}
	return countingWriter{w, &m.console}
}

type countingWriter struct {
	w io.Writer
	n *atomic.Uint64
}

func (c countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n.Add(uint64(n))
	return n, err
}

// run runs the guest once, counting the start and the exit.
func (m *metrics) run(f func() (int, error)) (int, error) {
	if m == nil {
		return f()
	}
	m.starts.Inc()
	m.up.Set(1)
	start := time.Now()
	status, err := f()
	m.up.Set(0)
	m.runTime.Observe(time.Since(start).Seconds())
	m.exits.WithLabelValues(exitReason(status, err)).Inc()
	return status, err
}

func exitReason(status int, err error) string {
	switch {
	case status == 0 && err == nil:
		return "exit"
	case status == exitError || (status == 0 && err != nil):
		return "start"
	case status == 137:
		return "oom"
	case status == 139:
		return "fault"
	case status == 159:
		return "strict"
	case status > 128:
		return "signal"
	}
	return "failure"
}

var (
	descCPU     = prometheus.NewDesc("mote_guest_cpu_seconds_total", "CPU time of mote and its guest (user and system).", nil, nil)
	descRSS     = prometheus.NewDesc("mote_guest_resident_bytes", "Resident memory of mote and its guest.", nil, nil)
	descIO      = prometheus.NewDesc("mote_guest_io_bytes_total", "Bytes read and written by system calls of mote and its guest (console, files, block devices, host network).", []string{"direction"}, nil)
	descConsole = prometheus.NewDesc("mote_guest_console_bytes_total", "Bytes the guest wrote to its console.", nil, nil)
	descFrames  = prometheus.NewDesc("mote_nic_frames_total", "Ethernet frames through a NIC's rings.", []string{"nic", "direction"}, nil)
	descDropped = prometheus.NewDesc("mote_nic_dropped_frames_total", "Frames a NIC dropped.", []string{"nic"}, nil)
)

func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descCPU, descRSS, descIO, descConsole, descFrames, descDropped} {
		ch <- d
	}
}

func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	u := usageOf(os.Getpid())
	ch <- prometheus.MustNewConstMetric(descCPU, prometheus.CounterValue, float64(u.ticks)/100)
	ch <- prometheus.MustNewConstMetric(descRSS, prometheus.GaugeValue, float64(u.rss))
	ch <- prometheus.MustNewConstMetric(descIO, prometheus.CounterValue, float64(u.read), "read")
	ch <- prometheus.MustNewConstMetric(descIO, prometheus.CounterValue, float64(u.written), "write")
	ch <- prometheus.MustNewConstMetric(descConsole, prometheus.CounterValue, float64(m.console.Load()))
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, d := range m.nics {
		ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(d.RxFrames.Load()), name, "rx")
		ch <- prometheus.MustNewConstMetric(descFrames, prometheus.CounterValue, float64(d.TxFrames.Load()), name, "tx")
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(d.Dropped.Load()), name)
	}
}
