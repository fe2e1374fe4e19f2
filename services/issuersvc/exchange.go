package issuersvc

import (
	"context"

	treatyv1 "github.com/treaty-dev/treaty/gen/treaty/v1"
	"github.com/treaty-dev/treaty/issuer"
	"github.com/treaty-dev/treaty/services/edge"
)

// ExchangeToken implements treatyv1.IssuerServiceServer: RFC 8693 token exchange.
func (s *Service) ExchangeToken(ctx context.Context, req *treatyv1.ExchangeTokenRequest) (*treatyv1.ExchangeTokenResponse, error) {
	if err := validateExchangeToken(req); err != nil {
		return nil, edge.Status(s.log, err)
	}
	out, err := s.iss.Exchange(ctx, exchangeRequest(req))
	if err != nil {
		return nil, edge.Status(s.log, err)
	}
	return &treatyv1.ExchangeTokenResponse{
		AccessToken: out.Token, IssuedTokenType: issuer.TokenTypeAccessToken, TokenType: tokenType,
		Credential: credentialProto(out.Credential),
	}, nil
}
