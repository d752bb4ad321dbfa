package compliance

import (
	"embed"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"
)

// WriteJSON writes the report's JSON, indented, with a final newline.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadJSON parses a report written by WriteJSON (or json.Marshal), for
// WithPreviousReport. Unknown fields are refused.
func ReadJSON(rd io.Reader) (*Report, error) {
	dec := json.NewDecoder(io.LimitReader(rd, maxReportSize))
	dec.DisallowUnknownFields()
	var r Report
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("compliance: not a report: %w", err)
	}
	return &r, nil
}

// maxReportSize bounds a report ReadJSON parses.
const maxReportSize = 1 << 30

// csvHeader names the CSV columns.
var csvHeader = []string{
	"KeyId", "Arn", "Aliases", "KeyState", "CreationDate", "RotationEnabled", "RotationPeriodInDays",
	"Rotations", "LastRotationDate", "LongestIntervalDays", "CurrentVersionAgeDays",
	"OverduePeriods", "OverdueDays", "Versions", "EncryptCount", "DecryptCount",
	"AuditLogVerified", "Compliant", "FailedControls",
}

// WriteCSV writes one header row and one row per key. Cells that a
// spreadsheet would read as a formula are prefixed with a quote.
func (r *Report) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, k := range r.Keys {
		var last string
		if n := len(k.Rotations); n > 0 {
			last = k.Rotations[n-1].Date.Format(time.RFC3339)
		}
		var overdue float64
		for _, o := range k.OverduePeriods {
			overdue += o.Days
		}
		var enc, dec uint64
		for _, v := range k.Versions {
			enc += v.EncryptCount
			dec += v.DecryptCount
		}
		var failed []string
		for _, f := range k.Findings {
			if f.Status == Fail {
				failed = append(failed, f.Control)
			}
		}
		row := []string{
			k.KeyId, k.Arn, strings.Join(k.Aliases, ";"), k.KeyState, k.CreationDate.Format(time.RFC3339),
			strconv.FormatBool(k.RotationEnabled), num(k.RotationPeriodInDays),
			strconv.Itoa(len(k.Rotations)), last, num(k.LongestIntervalDays), num(k.CurrentVersionAgeDays),
			strconv.Itoa(len(k.OverduePeriods)), num(overdue), strconv.Itoa(len(k.Versions)),
			strconv.FormatUint(enc, 10), strconv.FormatUint(dec, 10),
			strconv.FormatBool(r.AuditLog.Verified), strconv.FormatBool(k.Compliant), strings.Join(failed, ";"),
		}
		for i, c := range row {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				row[i] = "'" + c
			}
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

//go:embed templates/*.html
var templates embed.FS

var page = template.Must(template.New("report.html").Funcs(template.FuncMap{
	"date":  func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
	"stamp": stamp,
	"days":  num,
	"mul10": func(f float64) float64 { return f * 10 },
	"short": func(s string) string {
		if len(s) > 16 {
			return s[:16] + "..."
		}
		return s
	},
}).ParseFS(templates, "templates/report.html"))

// WriteHTML writes the report as one self-contained HTML page: a summary
// table, the audit log's verification, and per key a rotation timeline
// (SVG: versions as bars, overdue stretches marked), its rotations,
// versions, state changes and findings. It loads nothing and runs no
// script, and prints as it shows.
func (r *Report) WriteHTML(w io.Writer) error {
	return page.Execute(w, newView(r))
}

// view is what the template draws.
type view struct {
	*Report
	Keys  []keyView
	Ticks []tick
}

type keyView struct {
	Key
	Bars    []bar
	Overdue []bar
	Marks   []bar // rotations
}

type bar struct {
	X, W  float64 // percent of the timeline's width
	Label string
	Class string
	Title string
}

type tick struct {
	X      float64
	Label  string
	Anchor string // text-anchor: start, middle or end
}

func newView(r *Report) view {
	v := view{Report: r}
	start, end := r.PeriodStart, r.PeriodEnd
	span := end.Sub(start)
	if span <= 0 {
		span = time.Second
	}
	pos := func(t time.Time) float64 {
		p := float64(t.Sub(start)) / float64(span) * 100
		return min(max(p, 0), 100)
	}
	for y := start.Year(); y <= end.Year()+1; y++ {
		t := time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC)
		if !t.Before(start) && !t.After(end) {
			tk := tick{X: pos(t), Label: strconv.Itoa(y), Anchor: "middle"}
			switch {
			case tk.X < 3:
				tk.Anchor = "start"
			case tk.X > 97:
				tk.Anchor = "end"
			}
			v.Ticks = append(v.Ticks, tk)
		}
	}
	for _, k := range r.Keys {
		kv := keyView{Key: k}
		for i, ver := range k.Versions {
			e := end
			if i+1 < len(k.Versions) {
				e = k.Versions[i+1].CreationDate
			}
			if !e.After(start) || ver.CreationDate.After(end) {
				continue
			}
			x := pos(ver.CreationDate)
			class := "v"
			if i+1 == len(k.Versions) {
				class = "v cur"
			}
			kv.Bars = append(kv.Bars, bar{X: x, W: max(pos(e)-x, 0.2), Label: "v" + strconv.FormatUint(uint64(ver.KeyVersion), 10), Class: class,
				Title: fmt.Sprintf("version %d: %s to %s (%s)", ver.KeyVersion, ver.CreationDate.Format(time.DateOnly), e.Format(time.DateOnly), ver.State)})
		}
		for _, o := range k.OverduePeriods {
			x := pos(o.Start)
			kv.Overdue = append(kv.Overdue, bar{X: x, W: max(pos(o.End)-x, 0.2), Title: fmt.Sprintf("overdue %s days: %s to %s", num(o.Days), o.Start.Format(time.DateOnly), o.End.Format(time.DateOnly))})
		}
		for _, rot := range k.Rotations {
			kv.Marks = append(kv.Marks, bar{X: pos(rot.Date), Title: fmt.Sprintf("%s rotation to version %d on %s", rot.Type, rot.KeyVersion, rot.Date.Format(time.DateOnly))})
		}
		v.Keys = append(v.Keys, kv)
	}
	return v
}

// stamp formats a time (or a non-nil *time.Time) as RFC 3339 in UTC.
func stamp(v any) string {
	switch t := v.(type) {
	case time.Time:
		return t.UTC().Format(time.RFC3339)
	case *time.Time:
		if t != nil {
			return t.UTC().Format(time.RFC3339)
		}
	}
	return ""
}
