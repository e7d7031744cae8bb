package auth

import (
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// AgentIssuer is the issuer of agent JWTs (SPEC §4). User tokens are opaque
// and never JWTs, so neither kind can stand in for the other.
const AgentIssuer = "redflag-agent"

// AgentTokenTTL is the life of an agent JWT.
const AgentTokenTTL = 24 * time.Hour

// MinSecretLen is the shortest HS256 secret accepted.
const MinSecretLen = 32

// AgentClaims are the claims of an agent JWT. Gen is the agent's token
// generation: re-registering the machine bumps it, killing older tokens.
type AgentClaims struct {
	Gen int64 `json:"gen"`
	jwt.RegisteredClaims
}

// AgentTokens issues and checks agent JWTs.
type AgentTokens struct {
	secret []byte
	now    func() time.Time
}

// NewAgentTokens refuses secrets shorter than MinSecretLen.
func NewAgentTokens(secret []byte, now func() time.Time) (*AgentTokens, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("JWT secret is %d bytes; it must be at least %d", len(secret), MinSecretLen)
	}
	if now == nil {
		now = time.Now
	}
	return &AgentTokens{secret: secret, now: now}, nil
}

// Issue signs a token for agent id at generation gen.
func (a *AgentTokens) Issue(agentID string, gen int64) (string, time.Time, error) {
	now := a.now()
	exp := now.Add(AgentTokenTTL)
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, AgentClaims{Gen: gen, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: AgentIssuer, Subject: agentID, IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(exp),
	}})
	s, err := tok.SignedString(a.secret)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("signing agent token: %w", err)
	}
	return s, exp, nil
}

// ErrInvalidToken is any token that does not verify.
var ErrInvalidToken = errors.New("token is invalid or expired")

// Parse verifies signature, algorithm, issuer and expiry.
func (a *AgentTokens) Parse(s string) (AgentClaims, error) {
	var c AgentClaims
	_, err := jwt.ParseWithClaims(s, &c, func(*jwt.Token) (any, error) { return a.secret, nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithIssuer(AgentIssuer), jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(a.now), jwt.WithLeeway(30*time.Second))
	if err != nil || c.Subject == "" {
		return AgentClaims{}, ErrInvalidToken
	}
	return c, nil
}
