package abi

import (
	"strings"
	"testing"
)

func TestManifestRoundTrip(t *testing.T) {
	m := &Manifest{Version: Version, Target: TargetHVT,
		Net: []NIC{{Name: "net0", FD: 3, MAC: "02:00:00:00:00:01", MTU: 1500, Addr: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"},
			Neighbors: []Neighbor{{Addr: "10.0.2.2", MAC: "02:00:00:00:02:02"}}}},
		Block: []Block{{Name: "site", FD: 4, SectorSize: 512, Sectors: 8, ReadOnly: true}},
		FS:    []Tree{{Name: "www", Block: "site"}},
	}
	b, err := m.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Net[0].MAC != "02:00:00:00:00:01" || got.Block[0].Sectors != 8 || got.FS[0].Block != "site" {
		t.Fatalf("round trip: %+v", got)
	}
}

func TestManifestRefusals(t *testing.T) {
	ok := func() Manifest {
		return Manifest{Version: Version, Target: TargetHVT,
			Net:   []NIC{{Name: "net0", FD: 3, MAC: "02:00:00:00:00:01", MTU: 1500}},
			Block: []Block{{Name: "disk", FD: 4, SectorSize: 512, Sectors: 1}}}
	}
	for name, c := range map[string]struct {
		edit func(*Manifest)
		want string
	}{
		"version":       {func(m *Manifest) { m.Version = 9 }, "version"},
		"target":        {func(m *Manifest) { m.Target = "vmx" }, "unknown target"},
		"name":          {func(m *Manifest) { m.Net[0].Name = "Net 0" }, "not valid"},
		"dup name":      {func(m *Manifest) { m.Block[0].Name = "net0" }, "used twice"},
		"stdio fd":      {func(m *Manifest) { m.Net[0].FD = 1 }, "not above stderr"},
		"shared fd":     {func(m *Manifest) { m.Block[0].FD = 3 }, "share descriptor"},
		"mac":           {func(m *Manifest) { m.Net[0].MAC = "zz" }, "bad MAC"},
		"mtu":           {func(m *Manifest) { m.Net[0].MTU = 100 }, "MTU"},
		"addr":          {func(m *Manifest) { m.Net[0].Addr = "10.0.0.1" }, "bad IPv4"},
		"sector":        {func(m *Manifest) { m.Block[0].SectorSize = 1000 }, "sector size"},
		"neighbour":     {func(m *Manifest) { m.Net[0].Neighbors = []Neighbor{{Addr: "fe80::1", MAC: "02:00:00:00:00:09"}} }, "bad neighbour address"},
		"neighbour mac": {func(m *Manifest) { m.Net[0].Neighbors = []Neighbor{{Addr: "10.0.2.2", MAC: "x"}} }, "bad MAC"},
		"tree device":   {func(m *Manifest) { m.FS = []Tree{{Name: "www", Block: "nope"}} }, "no block device"},
	} {
		m := ok()
		c.edit(&m)
		if err := m.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
	if _, err := Parse([]byte("{")); err == nil {
		t.Error("bad JSON accepted")
	}
}
