package procstat

import (
	"os"
	"testing"
)

func TestParse(t *testing.T) {
	st, ok := parse(42, "42 (a b) c)) Z 1 7 7 0 -1 4194560 0")
	if !ok || st != (Stat{Pid: 42, State: "Z", PPid: 1, Pgrp: 7}) {
		t.Errorf("parse = %+v, %v", st, ok)
	}
	full := "9 (uml) S 1 9 9 0 -1 4194560 123 456 7 8 21 34 5 6 20 0 1 0 100"
	if st, ok := parse(9, full); !ok || st != (Stat{Pid: 9, State: "S", PPid: 1, Pgrp: 9, MinFlt: 123, UTime: 21, STime: 34}) {
		t.Errorf("parse of a full line = %+v, %v", st, ok)
	}
	for _, bad := range []string{"", "42 (x", "42 (x) S", "42 (x) S one 2"} {
		if _, ok := parse(42, bad); ok {
			t.Errorf("parse(%q) accepted", bad)
		}
	}
}

func TestAllHasThisProcess(t *testing.T) {
	for _, st := range All() {
		if st.Pid == os.Getpid() {
			if st.PPid != os.Getppid() {
				t.Errorf("ppid %d, want %d", st.PPid, os.Getppid())
			}
			return
		}
	}
	t.Fatal("this process is not listed")
}
