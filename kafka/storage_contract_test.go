package kafka

import "github.com/klite/klite/storage"

// The real store must satisfy what the protocol layer programs against.
var _ Storage = (*storage.Store)(nil)
