package decisionlog

// SubjectPartition returns the partition of the subject index that holds subject's entries.
func SubjectPartition(subject string) int { return int(partitionOf(subjectHash(subject))) }

// SetReindexChunk sets how many entries one rebuild transaction indexes, until the test ends.
func SetReindexChunk(t interface{ Cleanup(func()) }, n int) {
	old := reindexChunk
	reindexChunk = n
	t.Cleanup(func() { reindexChunk = old })
}

// Buckets of the layout, for tests that look at the file.
const (
	RecordsBucket   = recordsBucket
	BySubjectBucket = bySubjectBucket
	StateBucket     = stateBucket
)
