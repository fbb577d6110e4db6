package group

// Export and import of committed offsets, for the bucket's metadata
// snapshot (tier.MetaSnapshot.Offsets): a broker rebuilt on an empty disk
// imports them into its offsets log before the coordinator opens.

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"strings"
)

// Export format (part of the bucket format, big-endian; a change means a
// new version byte):
//
//	| magic "KLGX" u32 | version u8 =2 | 0 u8 | 0 u16 |
//	| records, as in the offsets log (length u32 | CRC-32C u32 | body) |
//	| CRC-32C u32 of everything before |
//
// Records are of type 4 (group meta: protocol type, generation), then 1
// (commits, at most about exportRecordBytes each), groups and partitions
// in name order. Membership is not exported: members rejoin. Version 2
// adds, after the groups, the transaction coordinator's states (type 8)
// and transactions' pending offsets (type 9), so a broker rebuilt from the
// bucket finishes or aborts the transactions it had; version 1 exports
// (no transactions) are still imported.
const (
	exportMagic       = 0x4b4c4758 // "KLGX"
	exportVersion     = 2
	exportHeaderBytes = 8
	exportRecordBytes = 1 << 20
)

// ErrBadExport: ImportOffsets was given bytes that are not an intact
// export.
var ErrBadExport = errors.New("group: bad offsets export")

// ExportOffsets encodes every group's committed offsets (with leader
// epoch, metadata, commit and expiry times) and the groups' protocol type
// and generation, and the transaction coordinator's states with the
// transactions' pending offsets, as durably logged at the time of the
// call. Safe from any goroutine.
func (c *Coordinator) ExportOffsets() ([]byte, error) {
	l := c.offs
	l.stateMu.RLock()
	defer l.stateMu.RUnlock()
	b := binary.BigEndian.AppendUint32(nil, exportMagic)
	b = append(b, exportVersion, 0, 0, 0)
	names := slices.Sorted(maps.Keys(l.state.groups))
	for _, name := range names {
		g := l.state.groups[name]
		b = append(b, groupMetaRecord(name, g.protocolType, g.generation)...)
		tps := make([]TP, 0, len(g.offsets))
		for tp := range g.offsets {
			tps = append(tps, tp)
		}
		slices.SortFunc(tps, func(a, b TP) int {
			if c := strings.Compare(a.Topic, b.Topic); c != 0 {
				return c
			}
			return int(a.Partition) - int(b.Partition)
		})
		var entries []commitEntry
		size := 0
		for _, tp := range tps {
			o := g.offsets[tp]
			entries = append(entries, commitEntry{tp, o})
			size += len(tp.Topic) + len(o.Metadata) + 40
			if size >= exportRecordBytes {
				b = append(b, commitRecord(name, entries)...)
				entries, size = entries[:0], 0
			}
		}
		if len(entries) > 0 {
			b = append(b, commitRecord(name, entries)...)
		}
	}
	b = encodeTxns(b, l.state)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, castagnoli)), nil
}

// ImportOffsets writes an export into the offsets log in cfg.Dir (on
// cfg.FS), durably (one write and fdatasync), so that Open(cfg) then
// serves those offsets. It is meant for a fresh Dir before Open; on a Dir
// that holds groups the imported values replace theirs (importing twice,
// as after a crash during the first, is harmless). Nothing is written if
// b does not check.
func ImportOffsets(cfg Config, b []byte) error {
	cfg.setDefaults()
	if err := cfg.check(); err != nil {
		return err
	}
	recs, err := checkExport(b)
	if err != nil {
		return err
	}
	l, err := openLog(cfg.FS, cfg.Dir, cfg.logOptions(), cfg.Logger.With().Str("component", "group").Logger())
	if err != nil {
		return err
	}
	var applies []func(*logState)
	for pos := 0; pos < len(recs); {
		n := int(binary.BigEndian.Uint32(recs[pos:]))
		apply, _ := decodeRecord(recs[pos+recHeaderBytes : pos+recHeaderBytes+n]) // checked
		applies = append(applies, apply)
		pos += recHeaderBytes + n
	}
	if len(recs) == 0 {
		return l.close()
	}
	done := make(chan error, 1)
	l.submit(&logOp{
		rec: recs,
		apply: func(state *logState) {
			for _, a := range applies {
				a(state)
			}
		},
		done: func(err error) { done <- err },
	})
	err = <-done
	if cerr := l.close(); err == nil {
		err = cerr
	}
	return err
}

// checkExport verifies b's header, CRC and every record (only types 1
// and 4, and from version 2 types 8 and 9), and returns the records.
func checkExport(b []byte) ([]byte, error) {
	if len(b) < exportHeaderBytes+4 {
		return nil, fmt.Errorf("%w: %d bytes", ErrBadExport, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, castagnoli) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: CRC mismatch", ErrBadExport)
	}
	version := body[4]
	if binary.BigEndian.Uint32(body) != exportMagic || version < 1 || version > exportVersion {
		return nil, fmt.Errorf("%w: magic or version", ErrBadExport)
	}
	recs := body[exportHeaderBytes:]
	for pos := 0; pos < len(recs); {
		if pos+recHeaderBytes > len(recs) {
			return nil, fmt.Errorf("%w: record header at %d cut", ErrBadExport, pos)
		}
		n := int(binary.BigEndian.Uint32(recs[pos:]))
		if n == 0 || n > MaxRecordBytes || pos+recHeaderBytes+n > len(recs) {
			return nil, fmt.Errorf("%w: record at %d of %d bytes", ErrBadExport, pos, n)
		}
		rb := recs[pos+recHeaderBytes : pos+recHeaderBytes+n]
		if crc32.Checksum(rb, castagnoli) != binary.BigEndian.Uint32(recs[pos+4:]) {
			return nil, fmt.Errorf("%w: record at %d CRC mismatch", ErrBadExport, pos)
		}
		txnRec := version >= 2 && (rb[0] == recTxnState || rb[0] == recTxnPending)
		if rb[0] != recCommit && rb[0] != recGroupMeta && !txnRec {
			return nil, fmt.Errorf("%w: record type %d", ErrBadExport, rb[0])
		}
		if _, err := decodeRecord(rb); err != nil {
			return nil, fmt.Errorf("%w: record at %d: %v", ErrBadExport, pos, err)
		}
		pos += recHeaderBytes + n
	}
	return recs, nil
}
