package compliance_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/kmsring/kmsring/compliance"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAttackHTMLInjectionThroughReportStrings: every string the page
// shows that someone else chose (a principal's name, an alias, a key ID
// read from the store, an operation or reason from the log, the ARN's
// account) is escaped for where it lands: text, an attribute (href, id,
// class, aria-label) or an SVG title. No markup comes through, rows and
// sections stay as many as the report has, and each hostile string shows
// up only escaped.
func TestAttackHTMLInjectionThroughReportStrings(t *testing.T) {
	const evil = `"'><script>alert(1)</script><img src=x onerror=alert(2)></title></svg><style>*{display:none}</style>&amp;`
	page := renderWith(t, evil)
	low := strings.ToLower(page)
	for _, bad := range []string{"<script", "<img", "</title></svg>", "<style>*"} {
		assert.NotContains(t, low, bad, "markup from a report string came through")
	}
	assert.Equal(t, 1, strings.Count(page, "<style"), "the page's own style sheet only")
	assert.Equal(t, 1, strings.Count(page, `<section class="key"`), "one key, one section")
	assert.NotContains(t, page, evil, "no hostile string is copied as it is")
	benign := renderWith(t, "x")
	for _, c := range []string{"<", ">", `"`} {
		assert.Equal(t, strings.Count(benign, c), strings.Count(page, c),
			"the page has as many %q as with harmless strings: every one the strings held was escaped", c)
	}
}

// renderWith renders a report of one key whose every free-text field
// holds s.
func renderWith(t *testing.T, s string) string {
	t.Helper()
	at := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	r := &compliance.Report{
		GeneratedAt: at, PeriodStart: at.AddDate(-1, 0, 0), PeriodEnd: at, MaxCryptoperiodDays: 365,
		AuditLog: compliance.AuditLog{Head: s, Error: s},
		Keys: []compliance.Key{{
			KeyId: s, Arn: "arn:aws:kms:x:" + s, Aliases: []string{s, "alias/" + s}, KeyState: s,
			CreationDate: at.AddDate(-1, 0, 0),
			Rotations:    []compliance.Rotation{{Date: at.AddDate(0, -6, 0), Type: s, Principal: s, KeyVersion: 2}},
			Versions: []compliance.Version{
				{KeyVersion: 1, State: s, CreationDate: at.AddDate(-1, 0, 0)},
				{KeyVersion: 2, State: s, CreationDate: at.AddDate(0, -6, 0)},
			},
			OverduePeriods: []compliance.OverduePeriod{{Start: at.AddDate(0, -2, 0), End: at, Days: 60}},
			StateChanges:   []compliance.StateChange{{Date: at.AddDate(0, -1, 0), Operation: s, Principal: s}},
			Findings:       []compliance.Finding{{Control: s, Status: s, Detail: s}},
		}},
		Summary: compliance.Summary{Keys: 1, NonCompliant: 1},
	}
	var buf bytes.Buffer
	require.NoError(t, r.WriteHTML(&buf))
	return buf.String()
}
