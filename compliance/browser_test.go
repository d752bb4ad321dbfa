package compliance_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/kmsring/kmsring/compliance"
)

// chromium returns the path of a headless-capable Chromium, or "".
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// runChromium runs headless Chromium on the page with args, isolated
// (no network services, a fresh profile), and returns its standard output.
func runChromium(t *testing.T, bin string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--user-data-dir=" + t.TempDir()}
	cmd := exec.CommandContext(ctx, bin, append(base, args...)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	require.NoError(t, cmd.Run(), "chromium: %s", stderr.String())
	return stdout.Bytes()
}

// The HTML report in a real browser: the page renders (the screenshot is
// not blank), without script, and every key is on the page. Skipped where
// Chromium is not installed (Debian: apt-get install chromium).
func TestHTMLInBrowser(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("chromium is not installed: the HTML report is not checked in a browser (apt-get install chromium)")
	}
	f := newFixture(t)
	r, err := compliance.Build(t.Context(), f.st, f.opts...)
	require.NoError(t, err)
	var page bytes.Buffer
	require.NoError(t, r.WriteHTML(&page))
	dir := t.TempDir()
	file := filepath.Join(dir, "report.html")
	require.NoError(t, os.WriteFile(file, page.Bytes(), 0o600))
	url := "file://" + file

	dom := string(runChromium(t, bin, "--disable-javascript", "--dump-dom", url))
	for _, k := range r.Keys {
		assert.Contains(t, dom, k.KeyId, "key %s is on the page, rendered without script", k.KeyId)
	}
	assert.Contains(t, dom, "<svg", "the timelines are drawn")
	assert.Contains(t, dom, "non-compliant")

	shot := filepath.Join(dir, "shot.png")
	runChromium(t, bin, "--disable-javascript", "--window-size=1200,1200", "--screenshot="+shot, url)
	fh, err := os.Open(shot)
	require.NoError(t, err)
	defer fh.Close()
	img, err := png.Decode(fh)
	require.NoError(t, err)
	b := img.Bounds()
	colors := map[uint32]bool{}
	var inked int
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			colors[r>>8<<16|g>>8<<8|bl>>8] = true
			if r>>8 < 200 || g>>8 < 200 || bl>>8 < 200 {
				inked++
			}
		}
	}
	total := (b.Dx() / 2) * (b.Dy() / 2)
	assert.Greater(t, len(colors), 20, "the screenshot has text and drawings, not one flat colour")
	assert.Greater(t, inked, total/100, "more than 1%% of the screenshot is drawn on")
	assert.False(t, strings.Contains(dom, "<script"), "no script")
}
