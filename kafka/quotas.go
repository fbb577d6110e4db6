package kafka

// Client quotas (KIP-546 APIs: 48_describe_client_quotas.go,
// 49_alter_client_quotas.go): the entities Kafka defines (user, client-id,
// their defaults and the combination of both) and the keys klite knows.
// The handler keeps every quota in memory; Config.QuotaStore makes
// changes durable and gives them back at New.

import (
	"maps"
	"sync"

	"github.com/klite/klite/storage"
)

// QuotaStore makes client quota changes durable. *storage.Store
// implements it.
type QuotaStore interface {
	// Quotas are the stored quotas, loaded by New.
	Quotas() []storage.Quota
	// SetQuotas replaces each entity's values; no values removes it.
	SetQuotas([]storage.Quota) error
}

// Quota entity types and keys, as Kafka names them.
const (
	quotaEntityUser     = "user"
	quotaEntityClientID = "client-id"
	quotaEntityIP       = "ip"

	quotaProducerByteRate  = "producer_byte_rate"
	quotaConsumerByteRate  = "consumer_byte_rate"
	quotaRequestPercentage = "request_percentage"
)

// quotaKeyIntegral reports, for each key klite accepts, whether Kafka
// declares it a LONG (no fractional values) rather than a DOUBLE. The
// same keys apply to user, client-id and user+client-id entities.
var quotaKeyIntegral = map[string]bool{
	quotaProducerByteRate:  true,
	quotaConsumerByteRate:  true,
	quotaRequestPercentage: false,
}

// quotaState is the handler's client quotas.
type quotaState struct {
	// mu guards m and orders changes: each is made durable and then
	// applied while mu is held, so memory and the log agree.
	mu sync.Mutex
	m  map[storage.QuotaEntity]map[string]float64
}

// loadQuotas fills the quotas from the store (at New).
func (h *Handler) loadQuotas() {
	h.quotas.m = map[storage.QuotaEntity]map[string]float64{}
	if h.cfg.QuotaStore == nil {
		h.rebuildQuotaTable()
		return
	}
	for _, q := range h.cfg.QuotaStore.Quotas() {
		h.quotas.m[q.Entity] = maps.Clone(q.Values)
	}
	h.rebuildQuotaTable()
}

// setQuotasLocked applies qs in memory; quotas.mu is held.
func (h *Handler) setQuotasLocked(qs []storage.Quota) {
	for _, q := range qs {
		if len(q.Values) == 0 {
			delete(h.quotas.m, q.Entity)
		} else {
			h.quotas.m[q.Entity] = maps.Clone(q.Values)
		}
	}
	h.rebuildQuotaTable()
}
