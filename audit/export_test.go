package audit

// ArchiveSegmentRecords makes Archive write segments of n records, so that
// tests see several segments without writing 50,000 records each.
func ArchiveSegmentRecords(n int) VerifyOption { return func(c *verifyConfig) { c.segment = n } }
