package revokersvc

// SetSubscriberBuffer sets the live queue's bound for a test and returns a function restoring it.
func SetSubscriberBuffer(n int) (restore func()) {
	old := subscriberBuffer
	subscriberBuffer = n
	return func() { subscriberBuffer = old }
}
