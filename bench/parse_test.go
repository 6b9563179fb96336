package bench

import (
	"strings"
	"testing"
	"time"
)

// sampleBuild is `packer build -color=false -timestamp-ui` output as packer 1.15 prints it without
// a terminal (ui.Message lines get the arrow too), shortened, from a build with the default modules.
const sampleBuild = `2026-11-27T15:43:23Z: ==> uml.debian: Checking the host for User-Mode Linux...
2026-11-27T15:43:23Z: ==> uml.debian: Creating a sparse 2048 MiB image /tmp/x/cold-0/debian.img...
2026-11-27T15:43:23Z: ==> uml.debian: Booting UML (512 MiB memory); console log: cold-0/console.log
2026-11-27T15:43:27Z: ==> uml.debian: Guest agent ready 4.137s after boot
2026-11-27T15:43:27Z: ==> uml.debian: Package cache: /tmp/x/cache
2026-11-27T15:43:27Z: ==> uml.debian: Using rootstrap module network from:
==> uml.debian: 	(built into packer-plugin-uml) network
2026-11-27T15:43:28Z: ==> uml.debian: network: network: the guest reaches HTTP(S) through the host's network (proxy http://127.0.0.1:3128)
2026-11-27T15:43:28Z: ==> uml.debian: Using rootstrap module mkfs from:
==> uml.debian: 	(built into packer-plugin-uml) mkfs
2026-11-27T15:43:31Z: ==> uml.debian: Using rootstrap module mount from:
2026-11-27T15:43:32Z: ==> uml.debian: Using rootstrap module debian from:
2026-11-27T15:43:40Z: ==> uml.debian: debian: I: Retrieving InRelease
2026-11-27T15:44:02Z: ==> uml.debian: network: 12.0 MiB downloaded by the guest (1.20 MB/s)
2026-11-27T15:53:32Z: ==> uml.debian: debian: I: Base system installed successfully.
2026-11-27T15:55:00Z: ==> uml.debian: Using rootstrap module uml from:
2026-11-27T15:55:30Z: ==> uml.debian: modules done: 5 module(s)
2026-11-27T15:55:31Z: ==> uml.debian: Provisioning with shell script: /tmp/packer-shell2254071243
2026-11-27T15:55:33Z: ==> uml.debian: Hello, world!
2026-11-27T15:55:35Z: ==> uml.debian: Using rootstrap module umount from:
2026-11-27T15:55:36Z: ==> uml.debian: post_modules done: 1 module(s)
2026-11-27T15:55:36Z: ==> uml.debian: Shutting down the guest...
2026-11-27T15:55:37Z: ==> uml.debian: Guest powered off in 205ms
2026-11-27T15:55:37Z: ==> uml.debian: Package cache: 0 hits (0.0 MiB), 212 misses; 97.4 MiB from the network
2026-11-27T15:55:39Z: ==> uml.debian: Resizing the filesystem to leave about 64 MiB free...
2026-11-27T15:55:45Z: ==> uml.debian: Image is now 512 MiB (430.2 MiB used, 64.0 MiB free)
2026-11-27T15:55:45Z: Build 'uml.debian' finished after 12 minutes 22 seconds.

==> Wait completed after 12 minutes 22 seconds

==> Builds finished. The artifacts of successful builds are:
--> uml.debian: Root filesystem image: /tmp/x/cold-0/debian.img (512 MiB ext4, built with UML kernel 6.1.176)
`

func TestParseCacheStats(t *testing.T) {
	got, err := parseCacheStats(sampleBuild)
	if err != nil {
		t.Fatal(err)
	}
	if want := (cacheStats{Hits: 0, HitMiB: 0, Misses: 212, NetworkMiB: 97.4}); got != want {
		t.Errorf("cold: got %+v, want %+v", got, want)
	}
	got, err = parseCacheStats("==> uml.debian: Package cache: /c\n" +
		"2026-11-27T16:00:00Z: ==> uml.debian: Package cache: 211 hits (96.3 MiB), 1 misses; 0.1 MiB from the network\n")
	if err != nil {
		t.Fatal(err)
	}
	if want := (cacheStats{Hits: 211, HitMiB: 96.3, Misses: 1, NetworkMiB: 0.1}); got != want {
		t.Errorf("warm: got %+v, want %+v", got, want)
	}
	if _, err := parseCacheStats("==> uml.debian: Package cache: /c\n"); err == nil {
		t.Error("no summary line: no error")
	}
}

func TestParseSteps(t *testing.T) {
	want := []step{
		{name: "other", took: 4 * time.Second}, // 15:43:23 (checking the host) to the network module at 15:43:27
		{name: "module network", took: time.Second},
		{name: "module mkfs", took: 3 * time.Second},
		{name: "module mount", took: time.Second},
		{name: "module debian", took: 11*time.Minute + 28*time.Second}, // its output and the network's progress do not end it
		{name: "module uml", took: 30 * time.Second},
		{name: "other", took: time.Second}, // modules done
		{name: "provisioner shell", took: 4 * time.Second},
		{name: "module umount", took: time.Second},
		{name: "other", took: 9 * time.Second}, // post_modules done, shutdown, resize, to the last timestamp
	}
	got := parseSteps(sampleBuild)
	if len(got) != len(want) {
		t.Fatalf("got %d steps %v, want %d %v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i].name != want[i].name || got[i].took != want[i].took {
			t.Errorf("step %d: got %v, want %v", i, got[i], want[i])
		}
	}
	if first := got[0].start.UTC().Format("15:04:05"); first != "15:43:23" {
		t.Errorf("first step starts at %s, want 15:43:23", first)
	}
	if s := got[1].start.Sub(got[0].start); s != 4*time.Second {
		t.Errorf("second step starts %s after the first, want 4s", s)
	}
	rows := stepRows(got, got)
	last := rows[len(rows)-1]
	if !strings.Contains(last, "total") || !strings.Contains(last, "12m22s") {
		t.Errorf("total row %q: want 12m22s (first to last timestamp)", last)
	}
	if other := rows[len(rows)-2]; !strings.Contains(other, "| 14s |") {
		t.Errorf("other row %q: want 14s", other)
	}
}

func TestParseFetch(t *testing.T) {
	took, size, err := parseFetch("1795794203.123456 1795794204,623457 33554432\n")
	if err != nil || took != 1500001*time.Microsecond || size != 33554432 {
		t.Errorf("got %v %d %v", took, size, err)
	}
	for _, bad := range []string{"", "wget: unable to resolve host address", "1.5 1.6 10", "2.000000 1.000000 10"} {
		if _, _, err := parseFetch(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
