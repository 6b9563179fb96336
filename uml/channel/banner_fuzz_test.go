package channel

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
	"testing"
)

// FuzzAwaitBanner feeds arbitrary bytes to the banner scan, alone and followed by a real banner.
// Input from a bytes.Reader ends, so the scan must end too: no panic, no hang, and only the errors
// awaitBanner documents. A success needs a line that starts with the banner word; and when nothing
// in the noise looks like a banner, the real banner after it is found.
func FuzzAwaitBanner(f *testing.F) {
	for _, s := range []string{
		"", "\n", "noise", "noise\n", Banner(1), Banner(2), "UMLAGENT 1\n", "UMLAGENT 1", "\nUMLAGENT x\n",
		"\r\nUMLAGENT 1\r\n", "UMLAGENT", "xUMLAGENT 1\n", "\x00\xff\n\x1b[0m", "UMLAGENT -0\n", "UMLAGENT +1 \n",
		strings.Repeat("a", 5000) + "\n",
	} {
		f.Add([]byte(s), uint8(1))
	}
	f.Fuzz(func(t *testing.T, data []byte, v uint8) {
		version := int(v)
		word := []byte(strings.TrimPrefix(bannerPrefix, "\n"))
		looksLikeBanner := bytes.HasPrefix(data, word) || bytes.Contains(data, []byte(bannerPrefix))

		err := awaitBanner(bufio.NewReaderSize(bytes.NewReader(data), 4096), version)
		switch {
		case err == nil:
			if !looksLikeBanner {
				t.Fatalf("banner found in %q, which has no line starting with %q", data, word)
			}
		case errors.Is(err, ErrNoBanner), errors.Is(err, ErrVersion):
		case strings.Contains(err.Error(), "no banner in the first"):
			if len(data) < maxBannerScan {
				t.Fatalf("scan limit hit after only %d bytes", len(data))
			}
		default:
			t.Fatalf("unexpected error %v", err)
		}
		if errors.Is(err, ErrVersion) && !looksLikeBanner {
			t.Fatalf("version error for %q, which has no banner line", data)
		}

		// The same noise, then the real banner.
		withBanner := append(append([]byte{}, data...), Banner(version)...)
		err = awaitBanner(bufio.NewReaderSize(bytes.NewReader(withBanner), 4096), version)
		if !looksLikeBanner && len(data) < maxBannerScan/2 && err != nil {
			t.Fatalf("banner after noise %q not found: %v", data, err)
		}
		if err != nil && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrNoBanner) && !strings.Contains(err.Error(), "no banner in the first") {
			t.Fatalf("unexpected error %v", err)
		}
	})
}
