package build

import (
	"os"
	"path/filepath"
	"testing"
)

// A build's default name is never the directory itself: "mote run ." once
// wrote its temporary image over its temporary directory's own path.
func TestName(t *testing.T) {
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ pkg, dir, want string }{
		{".", "/src/myservice", "myservice"},
		{"./", "/src/myservice", "myservice"},
		{"..", "/src/myservice/cmd", "myservice"},
		{"./cmd/api", "/src/myservice", "api"},
		{"./cmd/api/", "/src/myservice", "api"},
		{"../other", "/src/myservice", "other"},
		{"/abs/path/svc", "", "svc"},
		{"github.com/nats-io/nats-server/v2@v2.15.3", "", "nats-server"},
		{"./v2", "/src/x", "x"},
		{"example.com/x/tool@latest", "", "tool"},
		{"./...", "/src/myservice", "myservice"},
		{".", "/", "main"},
		{".", "", filepath.Base(wd)},
	} {
		if got := Name(c.pkg, c.dir); got != c.want {
			t.Errorf("Name(%q, %q) = %q, want %q", c.pkg, c.dir, got, c.want)
		}
	}
}
