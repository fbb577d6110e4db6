package kafka

// The server side of a SCRAM exchange (RFC 5802; SHA-256 and SHA-512 per
// RFC 7677), as Kafka's ScramSaslServer runs it: no channel binding, no
// mandatory extensions, and the nonce of the client's final message is
// accepted when it ends with the nonce the server sent. RFC 5802 asks for
// equality, but every librdkafka release sends its own nonce again in front
// of the server's ("r=<client nonce><server-first r>"), and Kafka accepts
// that; a server that insists on equality locks out kcat, confluent-kafka-*
// and every other librdkafka client. The proof still covers the whole
// AuthMessage, and the nonce still holds the server's fresh part.
//
// This is why the exchange is written here rather than taken from
// github.com/xdg-go/scram, whose server checks the nonce for equality (its
// client is used by the tests to check this server against RFC behaviour).

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
)

// scramNonceBytes is the length of the server's part of the nonce.
const scramNonceBytes = 32

var (
	errScramMessage = errors.New("kafka: malformed SCRAM message")
	errScramProof   = errors.New("kafka: SCRAM proof does not match")
	errScramState   = errors.New("kafka: SCRAM message out of turn")
)

type scramStage uint8

const (
	scramWantFirst scramStage = iota
	scramWantFinal
	scramDone
)

// scramConv is one connection's SCRAM exchange.
type scramConv struct {
	mech  ScramMechanism
	users *Users
	stage scramStage

	user      string
	authzid   string
	gs2Header string // as the client sent it, e.g. "n,,"
	c1Bare    string // client-first-message-bare
	s1        string // server-first-message
	nonce     string // client nonce + server nonce
	cred      ScramCredential
}

func newScramConv(m ScramMechanism, u *Users) *scramConv {
	return &scramConv{mech: m, users: u}
}

// step consumes one client message and returns the server's answer. done
// is true after the client's final message was verified. Any error fails
// the exchange.
func (c *scramConv) step(in string) (out string, done bool, err error) {
	switch c.stage {
	case scramWantFirst:
		c.stage = scramWantFinal
		out, err = c.first(in)
		return out, false, err
	case scramWantFinal:
		c.stage = scramDone
		out, err = c.final(in)
		return out, err == nil, err
	}
	return "", false, errScramState
}

// first parses client-first-message:
//
//	gs2-cbind-flag "," [ "a=" saslname ] "," [ "m=" ... "," ] "n=" saslname "," "r=" nonce [ "," extensions ]
func (c *scramConv) first(in string) (string, error) {
	flag, rest, ok := strings.Cut(in, ",")
	if !ok || (flag != "n" && flag != "y") { // "p=": channel binding, which Kafka does not offer
		return "", errScramMessage
	}
	authz, bare, ok := strings.Cut(rest, ",")
	if !ok {
		return "", errScramMessage
	}
	if authz != "" {
		a, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return "", errScramMessage
		}
		if c.authzid, ok = decodeSaslName(a); !ok {
			return "", errScramMessage
		}
	}
	c.gs2Header = flag + "," + authz + ","
	c.c1Bare = bare
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 {
		return "", errScramMessage
	}
	name, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return "", errScramMessage // "m=" (a mandatory extension) included
	}
	if c.user, ok = decodeSaslName(name); !ok || c.user == "" {
		return "", errScramMessage
	}
	cnonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || cnonce == "" {
		return "", errScramMessage
	}
	for _, ext := range attrs[2:] {
		// Kafka's one extension: delegation tokens, which klite has not.
		if ext == "tokenauth=true" {
			return "", errScramMessage
		}
	}
	c.cred = c.users.credential(c.user, c.mech)
	c.nonce = cnonce + scramNonce()
	c.s1 = "r=" + c.nonce + ",s=" + base64.StdEncoding.EncodeToString(c.cred.Salt) +
		",i=" + strconv.Itoa(int(c.cred.Iterations))
	return c.s1, nil
}

// final parses client-final-message and checks the proof:
//
//	"c=" base64(gs2-header) "," "r=" nonce [ "," extensions ] ",p=" base64(proof)
func (c *scramConv) final(in string) (string, error) {
	i := strings.LastIndex(in, ",p=")
	if i < 0 {
		return "", errScramMessage
	}
	withoutProof, proofB64 := in[:i], in[i+len(",p="):]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 {
		return "", errScramMessage
	}
	cb, ok := strings.CutPrefix(attrs[0], "c=")
	if !ok || cb != base64.StdEncoding.EncodeToString([]byte(c.gs2Header)) {
		return "", errScramMessage
	}
	nonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || !strings.HasSuffix(nonce, c.nonce) {
		return "", errScramMessage
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil {
		return "", errScramMessage
	}
	h := c.mech.hash()
	authMsg := []byte(c.c1Bare + "," + c.s1 + "," + withoutProof)
	mac := hmac.New(h, c.cred.StoredKey)
	mac.Write(authMsg)
	sig := mac.Sum(nil)
	if len(proof) != len(sig) {
		return "", errScramProof
	}
	clientKey := make([]byte, len(sig))
	subtle.XORBytes(clientKey, proof, sig)
	stored := h()
	stored.Write(clientKey)
	if !hmac.Equal(stored.Sum(nil), c.cred.StoredKey) {
		return "", errScramProof
	}
	mac = hmac.New(h, c.cred.ServerKey)
	mac.Write(authMsg)
	return "v=" + base64.StdEncoding.EncodeToString(mac.Sum(nil)), nil
}

// decodeSaslName undoes saslname's escapes ("=2C" for ',', "=3D" for '=');
// any other '=' is malformed.
func decodeSaslName(s string) (string, bool) {
	if !strings.Contains(s, "=") {
		return s, true
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}

// scramNonce is the server's part of a nonce: random letters and digits
// (Kafka's are alphanumeric too; any printable but ',' is allowed).
func scramNonce() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, scramNonceBytes)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
