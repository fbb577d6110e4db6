package kafka

// principal is the principal r's connection acts as, in Kafka's form
// ("User:alice"). Every connection is User:ANONYMOUS until SASL and mTLS
// authenticate connections: the ACL checks (authz.go) ask only this
// method, so SASL's version (same name and signature) replaces this file.
func (h *Handler) principal(r *request) string { return "User:ANONYMOUS" }
