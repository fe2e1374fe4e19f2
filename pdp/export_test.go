package pdp

// MemoStateID returns the feed.State ID that the grant memo of the cached token tok was made on,
// or 0 if the token is not cached or has no memo: so tests can tell that a later decision would
// have used the memo.
func MemoStateID(p *PDP, tok string) uint64 {
	if p.tokens == nil {
		return 0
	}
	e := p.tokens.get(tok, p.tokens.hash(tok), 0)
	if e == nil {
		return 0
	}
	return e.loadMemo().stateID
}
