package tier_test

import (
	"github.com/klite/klite/storage"
	"github.com/klite/klite/tier"
)

// Cold is what storage uses as its tiered log.
var _ storage.ColdLog = (*tier.Cold)(nil)
