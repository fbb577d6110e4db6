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
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"hash"
	"io"
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

// scramConv is one connection's SCRAM exchange. Between the two client
// messages it keeps a few hundred bytes whatever the client sent (a
// client-first message may be as large as the SASL receive limit, and an
// unauthenticated connection keeps its exchange until the authentication
// deadline): the AuthMessage is fed to the two HMACs that need it as it
// becomes known, rather than kept, and the nonce and gs2 header are kept
// as digests.
type scramConv struct {
	mech  ScramMechanism
	users *Users
	stage scramStage

	user      string // "" for an unknown user: the exchange then fails
	authzOK   bool   // no authzid, or the authzid is the user
	gs2Sum    []byte // digest of the "c=" value the final message must carry
	cnonceLen int
	cnonceSum []byte // digest of the client's nonce
	snonce    string // the server's part of the nonce
	clientSig hash.Hash
	serverSig hash.Hash
	storedKey []byte
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
	var authzid string
	if authz != "" {
		a, ok := strings.CutPrefix(authz, "a=")
		if !ok {
			return "", errScramMessage
		}
		if authzid, ok = decodeSaslName(a); !ok {
			return "", errScramMessage
		}
	}
	gs2Header := flag + "," + authz + ","
	attrs := strings.Split(bare, ",")
	if len(attrs) < 2 {
		return "", errScramMessage
	}
	name, ok := strings.CutPrefix(attrs[0], "n=")
	if !ok {
		return "", errScramMessage // "m=" (a mandatory extension) included
	}
	user, ok := decodeSaslName(name)
	if !ok || user == "" {
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
	cred, found := c.users.Get(user, c.mech)
	if !found {
		cred = c.users.fake(user, c.mech)
		user = ""
	}
	c.user = strings.Clone(user)
	c.authzOK = authzid == "" || authzid == user
	c.gs2Sum = scramDigest(base64.StdEncoding.EncodeToString([]byte(gs2Header)))
	c.cnonceLen, c.cnonceSum = len(cnonce), scramDigest(cnonce)
	c.snonce = scramNonce()
	s1 := "r=" + cnonce + c.snonce + ",s=" + base64.StdEncoding.EncodeToString(cred.Salt) +
		",i=" + strconv.Itoa(int(cred.Iterations))
	h := c.mech.hash()
	c.clientSig, c.serverSig = hmac.New(h, cred.StoredKey), hmac.New(h, cred.ServerKey)
	for _, w := range []io.Writer{c.clientSig, c.serverSig} {
		io.WriteString(w, bare)
		io.WriteString(w, ",")
		io.WriteString(w, s1)
		io.WriteString(w, ",")
	}
	c.storedKey = cred.StoredKey
	return s1, nil
}

// scramDigest is what the exchange keeps of a string the final message
// must repeat.
func scramDigest(s string) []byte {
	d := sha256.Sum256([]byte(s))
	return d[:]
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
	if !ok || !hmac.Equal(scramDigest(cb), c.gs2Sum) {
		return "", errScramMessage
	}
	nonce, ok := strings.CutPrefix(attrs[1], "r=")
	if !ok || !strings.HasSuffix(nonce, c.snonce) {
		return "", errScramMessage
	}
	nonce = nonce[:len(nonce)-len(c.snonce)]
	if len(nonce) < c.cnonceLen || !hmac.Equal(scramDigest(nonce[len(nonce)-c.cnonceLen:]), c.cnonceSum) {
		return "", errScramMessage
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil {
		return "", errScramMessage
	}
	h := c.mech.hash()
	io.WriteString(c.clientSig, withoutProof)
	sig := c.clientSig.Sum(nil)
	if len(proof) != len(sig) {
		return "", errScramProof
	}
	clientKey := make([]byte, len(sig))
	subtle.XORBytes(clientKey, proof, sig)
	stored := h()
	stored.Write(clientKey)
	if !hmac.Equal(stored.Sum(nil), c.storedKey) || c.user == "" {
		return "", errScramProof
	}
	io.WriteString(c.serverSig, withoutProof)
	return "v=" + base64.StdEncoding.EncodeToString(c.serverSig.Sum(nil)), nil
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
