package access

// SetMaxRefusals lowers how many refusals are kept, for the duration of a test.
func SetMaxRefusals(n uint64) (restore func()) {
	old := maxRefusals
	maxRefusals = n
	return func() { maxRefusals = old }
}
