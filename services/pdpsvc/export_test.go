package pdpsvc

// EncodeCheckResponse is the codec's own CheckResponse encoder, for tests that check when it is
// used.
var EncodeCheckResponse = encodeCheckResponse
