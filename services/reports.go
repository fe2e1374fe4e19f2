package services

import (
	"context"

	"google.golang.org/grpc"

	"github.com/treaty-dev/treaty/notify"
	"github.com/treaty-dev/treaty/posture"
	"github.com/treaty-dev/treaty/registry"
	"github.com/treaty-dev/treaty/services/issuersvc"
	"github.com/treaty-dev/treaty/services/reportsvc"
)

// startReports registers the report service beside the registry: posture findings over the
// registry, its audit trail and the issuer's inventory (when an issuer runs here or is a peer),
// recomputed on the schedule Start begins once the server serves.
func (s *Server) startReports(reg *registry.Registry, peer func(string) (*grpc.ClientConn, error)) error {
	cfg := s.cfg
	gcfg := reportsvc.GatherConfig{Registry: reg, UsageWindow: cfg.Posture.Rules.WithDefaults().UsageWindow, Logger: s.log}
	if cfg.runs(Issuer) || cfg.Peers[Issuer] != "" {
		conn, err := peer(Issuer)
		if err != nil {
			return err
		}
		gcfg.Credentials = issuersvc.NewCredentialSource(conn)
	}
	g, err := reportsvc.NewGatherer(gcfg)
	if err != nil {
		return err
	}
	onNew := cfg.Posture.OnNew
	if onNew == nil && s.notifier != nil {
		onNew = s.notifyFindings // new high and critical findings go to the owners' webhooks
	}
	runner, err := posture.NewRunner(posture.RunnerConfig{
		Gather: g.Gather, Rules: cfg.Posture.Rules, Interval: cfg.Posture.Interval, OnNew: onNew, Logger: s.log,
	})
	if err != nil {
		return err
	}
	revConn, err := peer(Revoker)
	if err != nil {
		return err
	}
	s.posture = runner
	reportsvc.New(reportsvc.Config{
		Runner: runner, Gatherer: g, Revocations: reportsvc.RevocationsFromRevoker(revConn),
		MaxCredentialTTL: cfg.MaxCredentialTTL, Logger: s.log,
	}).Register(s.grpc)
	return nil
}

// notifyFindings queues new high and critical posture findings as webhook notifications; the
// notifier keeps them durably, so the posture schedule never waits on a receiver.
func (s *Server) notifyFindings(ctx context.Context, fs []posture.Finding) {
	out := make([]notify.Finding, len(fs))
	for i, f := range fs {
		out[i] = notify.Finding{
			ID: f.ID, PartnerID: f.Subject.PartnerID, Severity: f.Severity.String(), Rule: f.Rule,
			Risk: string(f.Risk), Subject: f.Subject.String(), Summary: f.Message, Evidence: f.Evidence,
		}
	}
	s.notifier.NotifyFindings(ctx, out)
}
