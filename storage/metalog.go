package storage

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/klite/klite/vfs"
)

// The metadata log (see doc.go, "Metadata"): a snapshot meta-<gen>.snap
// and the changes made since, appended to meta-<gen>.log. Both are
// sequences of frames. Part of the on-disk format, big-endian:
//
//	| magic "KLMD" u32 | payload length u32 | CRC-32C of payload u32 | payload |
//
// A snapshot is one frame whose payload is a metaFile (JSON, the format of
// the old meta.json). A log frame is one group commit: records (JSON
// metaRecord) separated by '\n'. Each frame is written with one write and
// fdatasynced before the next is written, so only the last frame of the
// newest log can be torn.
const (
	metaFrameMagic  = 0x4B4C4D44 // "KLMD"
	metaFrameHeader = 12
	// maxMetaFrameBytes bounds a log frame's payload, when writing and
	// when reading (a larger length is not a frame).
	maxMetaFrameBytes = 16 << 20
	// maxMetaSnapBytes bounds a snapshot's payload.
	maxMetaSnapBytes = 1 << 30
	// minMetaLogBytes: a log is not replaced by a snapshot before it holds
	// this much (nor before it is as large as the last snapshot), so the
	// bytes written per change stay bounded whatever the topic count.
	minMetaLogBytes = 1 << 20
	// maxMovesPerRecord splits large log start or next_min changes.
	maxMovesPerRecord = 100_000

	metaPrefix     = "meta-"
	metaSnapSuffix = ".snap"
	metaLogSuffix  = ".log"
)

func metaSnapName(gen uint64) string {
	return fmt.Sprintf("%s%020d%s", metaPrefix, gen, metaSnapSuffix)
}
func metaLogName(gen uint64) string { return fmt.Sprintf("%s%020d%s", metaPrefix, gen, metaLogSuffix) }

// parseMetaName returns the generation and suffix of a metadata file name.
func parseMetaName(name string) (uint64, string, bool) {
	for _, suf := range []string{metaSnapSuffix, metaLogSuffix} {
		if strings.HasPrefix(name, metaPrefix) && strings.HasSuffix(name, suf) {
			g, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, metaPrefix), suf), 10, 64)
			if err == nil {
				return g, suf, true
			}
		}
	}
	return 0, "", false
}

func appendMetaFrame(b, payload []byte) []byte {
	be := binary.BigEndian
	b = be.AppendUint32(b, metaFrameMagic)
	b = be.AppendUint32(b, uint32(len(payload)))
	b = be.AppendUint32(b, crc32.Checksum(payload, castagnoli))
	return append(b, payload...)
}

// parseMetaFrame returns the payload of a whole, valid frame at the start
// of b and the frame's length; ok is false when there is none.
func parseMetaFrame(b []byte, limit int) (payload []byte, n int, ok bool) {
	be := binary.BigEndian
	if len(b) < metaFrameHeader || be.Uint32(b) != metaFrameMagic {
		return nil, 0, false
	}
	l := be.Uint32(b[4:])
	if l > uint32(limit) || int(l) > len(b)-metaFrameHeader {
		return nil, 0, false
	}
	payload = b[metaFrameHeader : metaFrameHeader+int(l)]
	if crc32.Checksum(payload, castagnoli) != be.Uint32(b[8:]) {
		return nil, 0, false
	}
	return payload, metaFrameHeader + int(l), true
}

// metaOpen is what openMeta found.
type metaOpen struct {
	state    *metaState
	gen      uint64
	log      vfs.File
	size     int64 // valid length of the log
	snapSize int64
	torn     int64 // bytes cut off the log's tail
}

// openMeta loads the newest snapshot and replays its log, cutting a torn
// tail. A directory holding only the old meta.json is converted once; an
// empty one gets an empty snapshot with shards shards.
func openMeta(fsys vfs.FS, dir string, shards int, log zerolog.Logger, now func() time.Time) (*metaOpen, error) {
	names, err := fsys.List(dir)
	if err != nil {
		return nil, err
	}
	var gen uint64
	var haveSnap, legacy bool
	for _, name := range names {
		if name == metaName {
			legacy = true
		}
		if strings.HasPrefix(name, metaPrefix) && strings.HasSuffix(name, tmpSuffix) {
			if err := fsys.Remove(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
			continue
		}
		if g, suf, ok := parseMetaName(name); ok && suf == metaSnapSuffix && (!haveSnap || g > gen) {
			gen, haveSnap = g, true
		}
	}

	if !haveSnap {
		m := metaFile{Version: metaVersion, Shards: shards}
		if legacy {
			old, _, err := loadMeta(fsys, dir)
			if err != nil {
				return nil, err
			}
			m = old
		}
		st, err := stateFromFile(&m)
		if err != nil {
			return nil, fmt.Errorf("storage: %s: %w", metaName, err)
		}
		gen = 1
		if _, err := writeMetaSnapshot(fsys, dir, gen, st.file(), maxMetaSnapBytes); err != nil {
			return nil, err
		}
		if legacy {
			log.Info().Int("topics", len(m.Topics)).Msg("converted meta.json to the metadata log")
		}
	}
	// Make the newest snapshot's name durable before anything older goes.
	if err := fsys.SyncDir(dir); err != nil {
		return nil, err
	}
	removed := false
	for _, name := range names {
		g, _, ok := parseMetaName(name)
		if (ok && g < gen) || name == metaName {
			if err := fsys.Remove(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
			removed = true
		}
	}
	if removed {
		if err := fsys.SyncDir(dir); err != nil {
			return nil, err
		}
	}

	snapPath := filepath.Join(dir, metaSnapName(gen))
	b, err := vfs.ReadFile(fsys, snapPath)
	if err != nil {
		return nil, err
	}
	payload, n, ok := parseMetaFrame(b, maxMetaSnapBytes)
	if !ok || n != len(b) {
		return nil, fmt.Errorf("storage: %s: corrupt snapshot (%d bytes)", snapPath, len(b))
	}
	var m metaFile
	if err := json.Unmarshal(payload, &m); err != nil {
		return nil, fmt.Errorf("storage: %s: %w", snapPath, err)
	}
	if m.Version != metaVersion || m.Shards <= 0 {
		return nil, fmt.Errorf("storage: %s: unsupported version %d or shards %d", snapPath, m.Version, m.Shards)
	}
	st, err := stateFromFile(&m)
	if err != nil {
		return nil, fmt.Errorf("storage: %s: %w", snapPath, err)
	}
	mo := &metaOpen{state: st, gen: gen, snapSize: int64(len(b))}
	if err := mo.replay(fsys, dir, log, now); err != nil {
		return nil, err
	}
	return mo, nil
}

// replay applies the log of mo.gen to mo.state and opens it for appends,
// creating it when the snapshot has none yet.
func (mo *metaOpen) replay(fsys vfs.FS, dir string, log zerolog.Logger, now func() time.Time) error {
	path := filepath.Join(dir, metaLogName(mo.gen))
	f, err := fsys.OpenRW(path)
	if errors.Is(err, fs.ErrNotExist) {
		if f, err = fsys.Create(path); err == nil {
			err = fsys.SyncDir(dir)
		}
		if err != nil {
			return err
		}
		mo.log = f
		return nil
	}
	if err != nil {
		return err
	}
	fail := func(err error) error {
		_ = f.Close()
		return err
	}
	b, err := vfs.ReadAll(f)
	if err != nil {
		return fail(err)
	}
	off := 0
	for off < len(b) {
		payload, n, ok := parseMetaFrame(b[off:], maxMetaFrameBytes)
		if !ok {
			break
		}
		for rec := range bytes.SplitSeq(payload, []byte{'\n'}) {
			var r metaRecord
			if err := json.Unmarshal(rec, &r); err != nil {
				return fail(fmt.Errorf("storage: %s: corrupt record in frame at offset %d: %w", path, off, err))
			}
			if err := mo.state.apply(&r); err != nil {
				return fail(fmt.Errorf("storage: %s: record in frame at offset %d: %w", path, off, err))
			}
		}
		off += n
	}
	if off < len(b) {
		if !tornMetaTail(b[off:]) {
			return fail(fmt.Errorf("storage: %s: corrupt frame at offset %d of %d", path, off, len(b)))
		}
		if err := keepAside(fsys, path, b[off:], now); err != nil {
			return fail(err)
		}
		err := f.Truncate(int64(off))
		if err == nil {
			err = f.Sync()
		}
		if err != nil {
			return fail(fmt.Errorf("storage: cutting torn tail of %s: %w", path, err))
		}
		mo.torn = int64(len(b) - off)
		log.Warn().Str("file", path).Int("at", off).Int64("bytes", mo.torn).Msg("cut torn metadata log tail")
	}
	mo.log, mo.size = f, int64(off)
	return nil
}

// tornMetaTail reports whether tail, which does not start with a valid
// frame, is what a crash during the last frame's write leaves: no valid
// frame after it, and when its header gives a length that fits, nothing
// but zeros past that length (a later write would mean this frame had
// been fsynced, and then it cannot be torn).
func tornMetaTail(tail []byte) bool {
	be := binary.BigEndian
	if len(tail) >= metaFrameHeader && be.Uint32(tail) == metaFrameMagic {
		if end := metaFrameHeader + int64(be.Uint32(tail[4:])); end <= int64(len(tail)) {
			for _, c := range tail[end:] {
				if c != 0 {
					return false
				}
			}
		}
	}
	var magic [4]byte
	be.PutUint32(magic[:], metaFrameMagic)
	for i := 1; i < len(tail); {
		j := bytes.Index(tail[i:], magic[:])
		if j < 0 {
			break
		}
		if _, _, ok := parseMetaFrame(tail[i+j:], maxMetaFrameBytes); ok {
			return false
		}
		i += j + 1
	}
	return true
}

// keepAside writes b to <path>.torn-<unix nanos>, durably.
func keepAside(fsys vfs.FS, path string, b []byte, now func() time.Time) error {
	aside := path + tornInfix + strconv.FormatInt(now().UnixNano(), 10)
	if err := vfs.WriteFile(fsys, aside, b); err != nil {
		return fmt.Errorf("storage: keeping torn tail of %s: %w", path, err)
	}
	return nil
}

// writeMetaSnapshot writes m as meta-<gen>.snap durably and returns its
// size.
func writeMetaSnapshot(fsys vfs.FS, dir string, gen uint64, m *metaFile, limit int64) (int64, error) {
	payload, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}
	if int64(len(payload)) > limit {
		return 0, fmt.Errorf("storage: metadata snapshot of %d bytes over %d", len(payload), limit)
	}
	b := appendMetaFrame(make([]byte, 0, metaFrameHeader+len(payload)), payload)
	return int64(len(b)), vfs.WriteFile(fsys, filepath.Join(dir, metaSnapName(gen)), b)
}
