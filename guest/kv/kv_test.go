package kv

import (
	"bytes"
	"fmt"
	"math/rand"
	"testing"
)

func TestBasics(t *testing.T) {
	dev := newCrashDevice(1<<20, 512, 1)
	s, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Put("a", []byte("1")); err != nil {
		t.Fatal(err)
	}
	s.Put("b/1", []byte("two"))
	s.Put("b/2", bytes.Repeat([]byte("x"), 3000))
	s.Delete("a")
	if v, ok, _ := s.Get("a"); ok {
		t.Fatalf("deleted key has %q", v)
	}
	if got := s.List("b/"); fmt.Sprint(got) != "[b/1 b/2]" {
		t.Fatalf("list %v", got)
	}
	// Reopen: everything is there.
	s2, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, _ := s2.Get("b/2"); !ok || len(v) != 3000 {
		t.Fatalf("after reopen: %d bytes, %v", len(v), ok)
	}
	if _, ok, _ := s2.Get("a"); ok {
		t.Fatal("delete lost on reopen")
	}
	if err := s2.Put("", nil); err != ErrTooLarge {
		t.Fatalf("empty key: %v", err)
	}
	// Damaged superblocks: refused, not formatted.
	for i := 0; i < 64; i++ {
		dev.durable[i] ^= 0xff
		dev.durable[headerSize/2+i] ^= 0xff
	}
	if _, err := Open(dev); err != ErrNotStore {
		t.Fatalf("damaged superblocks: %v", err)
	}
	junk := newCrashDevice(1<<20, 512, 3)
	copy(junk.durable, []byte("this is not a kv store"))
	if _, err := Open(junk); err != ErrNotStore {
		t.Fatalf("foreign device: %v", err)
	}
}

// TestCompactionUnderChurn overwrites a few keys far more often than the
// log holds, so compaction runs again and again, and checks every value
// after reopening.
func TestCompactionUnderChurn(t *testing.T) {
	dev := newCrashDevice(64<<10, 512, 2)
	s, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := 0; i < 2000; i++ {
		k := fmt.Sprintf("k%d", i%10)
		v := fmt.Sprintf("v%d", i)
		if err := s.Put(k, []byte(v)); err != nil {
			t.Fatal(i, err)
		}
		want[k] = v
	}
	s2, err := Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range want {
		if got, ok, _ := s2.Get(k); !ok || string(got) != v {
			t.Fatalf("%s = %q, want %q", k, got, v)
		}
	}
}

// TestCrashes is the guarantee: the device crashes at a random write or
// sync — inside an append, a compaction or a superblock commit — and loses,
// tears and reorders every write not covered by a completed Sync; after
// reopening, no acknowledged change is lost and nothing read is corrupt.
func TestCrashes(t *testing.T) {
	const trials = 400
	lost, corrupt, compactions := 0, 0, 0
	for trial := 0; trial < trials; trial++ {
		rnd := rand.New(rand.NewSource(int64(trial)))
		dev := newCrashDevice(32<<10, 512, int64(trial))
		s, err := Open(dev)
		if err != nil {
			t.Fatal(err)
		}
		acked := map[string]string{}   // must survive
		maybe := map[string][]string{} // in flight at the crash: may or may not
		dev.opsLeft = 1 + rnd.Intn(400)
		gen := s.gen
		for i := 0; ; i++ {
			k := fmt.Sprintf("key%d", rnd.Intn(12))
			v := fmt.Sprintf("%s=%d-%s", k, i, bytes.Repeat([]byte{'a' + byte(rnd.Intn(26))}, rnd.Intn(1500)))
			var err error
			del := rnd.Intn(8) == 0
			if del {
				err = s.Delete(k)
			} else {
				err = s.Put(k, []byte(v))
			}
			if err != nil {
				// Not acknowledged: the old value and the new are both fine.
				if old, ok := acked[k]; ok {
					maybe[k] = append(maybe[k], old)
				} else {
					maybe[k] = append(maybe[k], "")
				}
				if del {
					maybe[k] = append(maybe[k], "")
				} else {
					maybe[k] = append(maybe[k], v)
				}
				delete(acked, k)
				break
			}
			if del {
				delete(acked, k)
			} else {
				acked[k] = v
			}
		}
		compactions += int(s.gen - gen)
		dev.crash()
		s2, err := Open(dev)
		if err != nil {
			t.Fatalf("trial %d: reopen: %v", trial, err)
		}
		for i := 0; i < 12; i++ {
			k := fmt.Sprintf("key%d", i)
			got, ok, _ := s2.Get(k)
			want, had := acked[k]
			switch {
			case ok && !bytes.HasPrefix(got, []byte(k+"=")):
				corrupt++
			case len(maybe[k]) > 0:
				if ok && !contains(maybe[k], string(got)) || !ok && !contains(maybe[k], "") {
					lost++
					if lost < 4 {
						t.Logf("trial %d: in flight %s = %.20q (present %v), maybe %d values", trial, k, got, ok, len(maybe[k]))
					}
				}
			case ok && string(got) != want, !ok && had:
				lost++
				if lost < 4 {
					t.Logf("trial %d: %s = %.20q (present %v), acknowledged %.20q (present %v), gen %d", trial, k, got, ok, want, had, s2.gen)
				}
			}
		}
	}
	t.Logf("%d crash trials (%d compactions before the crashes): %d acknowledged writes lost, %d corrupt reads", trials, compactions, lost, corrupt)
	if lost != 0 || corrupt != 0 {
		t.Fatalf("%d lost, %d corrupt", lost, corrupt)
	}
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
