package ssfhttp

import (
	"net/http"

	"github.com/treaty-dev/treaty/ssf"
)

// configuration serves the Configuration Endpoint (SSF 1.0 section 8.1.1): POST creates, GET
// reads one stream or lists them, PATCH updates, PUT replaces, DELETE deletes.
func (h *Handler) configuration(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
		id := r.URL.Query().Get("stream_id")
		if id == "" {
			all, err := h.tr.Streams(ctx)
			if err != nil {
				h.fault(w, r, err)
				return
			}
			writeJSON(w, http.StatusOK, all)
			return
		}
		cfg, err := h.tr.Stream(ctx, id)
		if err != nil {
			h.fault(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, cfg)
	case http.MethodPost, http.MethodPatch, http.MethodPut:
		b, ok := h.body(w, r)
		if !ok {
			return
		}
		req, err := ssf.ParseStreamRequest(b)
		if err != nil {
			h.fault(w, r, err)
			return
		}
		var cfg ssf.StreamConfig
		status := http.StatusOK
		switch r.Method {
		case http.MethodPost:
			cfg, err = h.tr.CreateStream(ctx, req)
			status = http.StatusCreated
		case http.MethodPatch:
			cfg, err = h.tr.UpdateStream(ctx, req, false)
		default:
			cfg, err = h.tr.UpdateStream(ctx, req, true)
		}
		if err != nil {
			h.fault(w, r, err)
			return
		}
		writeJSON(w, status, cfg)
	case http.MethodDelete:
		if err := h.tr.DeleteStream(ctx, r.URL.Query().Get("stream_id")); err != nil {
			h.fault(w, r, err)
			return
		}
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusNoContent)
	default:
		allow(w, r, http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodPut, http.MethodDelete)
	}
}

// status serves the Status Endpoint (SSF 1.0 section 8.1.2): GET reads, POST updates.
func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	switch r.Method {
	case http.MethodGet:
		st, err := h.tr.Status(ctx, r.URL.Query().Get("stream_id"))
		if err != nil {
			h.fault(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	case http.MethodPost:
		b, ok := h.body(w, r)
		if !ok {
			return
		}
		req, err := ssf.ParseStatusRequest(b)
		if err != nil {
			h.fault(w, r, err)
			return
		}
		st, err := h.tr.SetStatus(ctx, req)
		if err != nil {
			h.fault(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, st)
	default:
		allow(w, r, http.MethodGet, http.MethodPost)
	}
}

// verify serves the Verification Endpoint (SSF 1.0 section 8.1.4.2).
func (h *Handler) verify(w http.ResponseWriter, r *http.Request) {
	b, ok := h.body(w, r)
	if !ok {
		return
	}
	id, state, err := ssf.ParseVerifyRequest(b)
	if err == nil {
		err = h.tr.Verify(r.Context(), id, state)
	}
	if err != nil {
		h.fault(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusNoContent)
}

// poll serves a poll stream's endpoint (RFC 8936 section 2.4).
func (h *Handler) poll(w http.ResponseWriter, r *http.Request, id string) {
	b, ok := h.body(w, r)
	if !ok {
		return
	}
	req, err := ssf.ParsePollRequest(b)
	if err != nil {
		h.fault(w, r, err)
		return
	}
	resp, err := h.tr.Poll(r.Context(), id, req)
	if err != nil {
		h.fault(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, resp)
}
