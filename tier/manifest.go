package tier

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"
)

// Partition names a partition in the bucket. TopicID keeps a deleted and
// recreated topic's objects apart from its predecessor's.
type Partition struct {
	Topic     string
	TopicID   [16]byte
	Partition int32
}

// Dir is the key prefix of everything stored for p.
func (p Partition) Dir() string {
	return "topics/" + p.Topic + "-" + hex.EncodeToString(p.TopicID[:]) + "/" + strconv.FormatInt(int64(p.Partition), 10) + "/"
}

// manifestDir is the key prefix of p's manifest versions and pointer.
func (p Partition) manifestDir() string { return p.Dir() + "manifest/" }

// ObjectKey is the key of p's data object covering [base, last] as
// uploaded. Zero-padded so a name sort is an offset sort.
func (p Partition) ObjectKey(base, last int64) string {
	return fmt.Sprintf("%sdata/%020d-%020d.klo", p.Dir(), base, last)
}

// GenObjectKey is the key of p's data object covering [base, last]
// written by compaction generation gen (0: ObjectKey). A generation is
// never reused once a manifest referenced it, so a reader holding an older
// manifest never reads bytes other than those it expects.
func (p Partition) GenObjectKey(base, last int64, gen uint32) string {
	if gen == 0 {
		return p.ObjectKey(base, last)
	}
	return fmt.Sprintf("%sdata/%020d-%020d-g%010d.klo", p.Dir(), base, last, gen)
}

// refKey is the key of the object o describes.
func (p Partition) refKey(o *ObjectRef) string {
	return p.GenObjectKey(o.BaseOffset, o.LastOffset, o.Gen)
}

// ObjectRef is a manifest's record of one data object.
type ObjectRef struct {
	BaseOffset   int64
	LastOffset   int64
	Size         int64 // whole object
	DataBytes    int64 // batches; the index starts here
	Entries      int32
	MaxTimestamp int64
	// Gen is 0 for an object uploaded as written (version 1, every offset
	// present), else the compaction generation that wrote it (a sparse
	// version 2 object, key GenObjectKey).
	Gen uint32
	// CleanedAt (unix ms) is when the tombstones in a Gen > 0 object were
	// first cleaned (the clock of delete.retention.ms); -1 when it holds
	// none. 0 for Gen 0.
	CleanedAt int64
}

// Manifest is one version of a partition's tiered log: the objects that
// hold it, in offset order and contiguous.
//
// Format (part of the bucket format, big-endian):
//
//	| magic "KLTM" u32 | version u8 =1|2 | flags u8 =0 | 0 u16 | seq u64 | topic ID [16] | partition i32 |
//	| topic name length u16 | topic name | log start offset i64 | object count u32 |
//	| objects: base i64 | last i64 | size u64 | data bytes u64 | entries u32 | max timestamp i64 |
//	|          (version 2 only:) gen u32 | cleaned at i64 |
//	| CRC-32C u32 of everything before |
//
// Version 1 is written while every object has Gen 0, so a bucket never
// compacted stays readable by binaries that know only version 1; version
// 2 once compaction wrote an object.
type Manifest struct {
	Seq            uint64
	Part           Partition
	LogStartOffset int64 // first offset readable from the tier (retention moves it)
	Objects        []ObjectRef

	keys []string // Objects' keys, built once so reads do not format them
}

// ObjectKey returns the key of Objects[i].
func (m *Manifest) ObjectKey(i int) string {
	if len(m.keys) == len(m.Objects) {
		return m.keys[i]
	}
	o := &m.Objects[i]
	return m.Part.refKey(o)
}

// fillKeys precomputes the object keys; m must not be shared yet. Keys of
// a previous version with the same objects are reused.
func (m *Manifest) fillKeys(prev *Manifest) {
	m.keys = make([]string, len(m.Objects))
	for i := range m.Objects {
		if prev != nil && i < len(prev.keys) && prev.Objects[i] == m.Objects[i] {
			m.keys[i] = prev.keys[i]
		} else {
			m.keys[i] = m.Part.refKey(&m.Objects[i])
		}
	}
}

const (
	manifestMagic      = 0x4b4c544d // "KLTM"
	manifestVersion    = 1
	manifestVersionV2  = 2 // objects carry Gen and CleanedAt
	objectRefBytes     = 44
	objectRefBytesV2   = objectRefBytes + 4 + 8
	maxManifestObjects = 1 << 22
	maxTopicNameBytes  = 249 // Kafka's limit
)

// NextOffset is the offset after the last tiered one (the log start
// offset when nothing is tiered).
func (m *Manifest) NextOffset() int64 {
	if len(m.Objects) == 0 {
		return m.LogStartOffset
	}
	return m.Objects[len(m.Objects)-1].LastOffset + 1
}

// references says whether key is one of m's objects.
func (m *Manifest) references(key string) bool {
	for i := range m.Objects {
		if m.ObjectKey(i) == key {
			return true
		}
	}
	return false
}

// Find returns the index of the object holding offset, or -1.
func (m *Manifest) Find(offset int64) int {
	if offset < m.LogStartOffset {
		return -1
	}
	lo, hi := 0, len(m.Objects)
	for lo < hi {
		i := int(uint(lo+hi) >> 1)
		if m.Objects[i].LastOffset < offset {
			lo = i + 1
		} else {
			hi = i
		}
	}
	if lo == len(m.Objects) || m.Objects[lo].BaseOffset > offset {
		return -1
	}
	return lo
}

// AppendBinary encodes m.
func (m *Manifest) AppendBinary(b []byte) ([]byte, error) {
	if len(m.Part.Topic) == 0 || len(m.Part.Topic) > maxTopicNameBytes {
		return b, fmt.Errorf("tier: manifest topic name of %d bytes", len(m.Part.Topic))
	}
	if err := m.check(); err != nil {
		return b, err
	}
	start := len(b)
	v := byte(manifestVersion)
	for i := range m.Objects {
		if m.Objects[i].Gen != 0 {
			v = manifestVersionV2
			break
		}
	}
	b = binary.BigEndian.AppendUint32(b, manifestMagic)
	b = append(b, v, 0, 0, 0)
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = append(b, m.Part.TopicID[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(m.Part.Partition))
	b = binary.BigEndian.AppendUint16(b, uint16(len(m.Part.Topic)))
	b = append(b, m.Part.Topic...)
	b = binary.BigEndian.AppendUint64(b, uint64(m.LogStartOffset))
	b = binary.BigEndian.AppendUint32(b, uint32(len(m.Objects)))
	for _, o := range m.Objects {
		b = binary.BigEndian.AppendUint64(b, uint64(o.BaseOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(o.LastOffset))
		b = binary.BigEndian.AppendUint64(b, uint64(o.Size))
		b = binary.BigEndian.AppendUint64(b, uint64(o.DataBytes))
		b = binary.BigEndian.AppendUint32(b, uint32(o.Entries))
		b = binary.BigEndian.AppendUint64(b, uint64(o.MaxTimestamp))
		if v == manifestVersionV2 {
			b = binary.BigEndian.AppendUint32(b, o.Gen)
			b = binary.BigEndian.AppendUint64(b, uint64(o.CleanedAt))
		}
	}
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b[start:], crcTable)), nil
}

// check verifies the invariants readers rely on: objects contiguous,
// sizes consistent, the log start inside the first object (or at the end
// when there are none).
func (m *Manifest) check() error {
	if m.LogStartOffset < 0 || len(m.Objects) > maxManifestObjects || m.Part.Partition < 0 {
		return fmt.Errorf("%w: manifest header out of range", ErrCorrupt)
	}
	for i, o := range m.Objects {
		if o.BaseOffset < 0 || o.LastOffset < o.BaseOffset || o.Entries <= 0 || o.Entries > maxObjectEntries || o.DataBytes < 0 ||
			o.Size != o.DataBytes+int64(o.Entries)*indexEntryBytes+trailerBytes {
			return fmt.Errorf("%w: manifest object %d invalid", ErrCorrupt, i)
		}
		if i > 0 && o.BaseOffset != m.Objects[i-1].LastOffset+1 {
			return fmt.Errorf("%w: manifest object %d not contiguous", ErrCorrupt, i)
		}
	}
	if len(m.Objects) > 0 && (m.LogStartOffset < m.Objects[0].BaseOffset || m.LogStartOffset > m.Objects[0].LastOffset) {
		return fmt.Errorf("%w: manifest log start %d outside first object", ErrCorrupt, m.LogStartOffset)
	}
	return nil
}

// DecodeManifest decodes and checks an encoded manifest.
func DecodeManifest(b []byte) (*Manifest, error) {
	const fixed = 4 + 4 + 8 + 16 + 4 + 2
	if len(b) < fixed+8+4+4 {
		return nil, fmt.Errorf("%w: manifest of %d bytes", ErrCorrupt, len(b))
	}
	body := b[:len(b)-4]
	if crc32.Checksum(body, crcTable) != binary.BigEndian.Uint32(b[len(b)-4:]) {
		return nil, fmt.Errorf("%w: manifest CRC mismatch", ErrCorrupt)
	}
	if binary.BigEndian.Uint32(b) != manifestMagic {
		return nil, fmt.Errorf("%w: bad manifest magic", ErrCorrupt)
	}
	refBytes := objectRefBytes
	switch b[4] {
	case manifestVersion:
	case manifestVersionV2:
		refBytes = objectRefBytesV2
	default:
		return nil, fmt.Errorf("%w: manifest version %d", ErrCorrupt, b[4])
	}
	m := &Manifest{Seq: binary.BigEndian.Uint64(b[8:])}
	copy(m.Part.TopicID[:], b[16:32])
	m.Part.Partition = int32(binary.BigEndian.Uint32(b[32:]))
	nameLen := int(binary.BigEndian.Uint16(b[36:]))
	rest := body[fixed:]
	if nameLen == 0 || nameLen > maxTopicNameBytes || len(rest) < nameLen+12 {
		return nil, fmt.Errorf("%w: manifest topic name", ErrCorrupt)
	}
	m.Part.Topic = string(rest[:nameLen])
	rest = rest[nameLen:]
	m.LogStartOffset = int64(binary.BigEndian.Uint64(rest))
	n := int(binary.BigEndian.Uint32(rest[8:]))
	rest = rest[12:]
	if n > maxManifestObjects || len(rest) != n*refBytes {
		return nil, fmt.Errorf("%w: manifest holds %d bytes for %d objects", ErrCorrupt, len(rest), n)
	}
	m.Objects = make([]ObjectRef, n)
	for i := range m.Objects {
		o := rest[i*refBytes:]
		m.Objects[i] = ObjectRef{
			BaseOffset:   int64(binary.BigEndian.Uint64(o[0:])),
			LastOffset:   int64(binary.BigEndian.Uint64(o[8:])),
			Size:         int64(binary.BigEndian.Uint64(o[16:])),
			DataBytes:    int64(binary.BigEndian.Uint64(o[24:])),
			Entries:      int32(binary.BigEndian.Uint32(o[32:])),
			MaxTimestamp: int64(binary.BigEndian.Uint64(o[36:])),
		}
		if refBytes == objectRefBytesV2 {
			m.Objects[i].Gen = binary.BigEndian.Uint32(o[44:])
			m.Objects[i].CleanedAt = int64(binary.BigEndian.Uint64(o[48:]))
		}
	}
	if err := m.check(); err != nil {
		return nil, err
	}
	return m, nil
}

// Versioned state (manifests, the metadata snapshot) is written
// as immutable objects under dir+"v/" named by zero-padded sequence number,
// each created with If-None-Match so two writers cannot both publish a
// sequence number, and only after everything it references is uploaded.
// dir+"current" then records the newest sequence; it only ever moves
// forward and is only a hint: readers list versions after it, so a crash
// between the version and the pointer loses nothing.
//
//	pointer (16 bytes): | magic "KLTP" u32 | seq u64 | CRC-32C u32 |
const (
	pointerMagic = 0x4b4c5450 // "KLTP"
	pointerBytes = 16
	// maxVersionBytes bounds reading one version object.
	maxVersionBytes = 1 << 30
)

func versionKey(dir string, seq uint64) string { return fmt.Sprintf("%sv/%020d", dir, seq) }

func pointerKey(dir string) string { return dir + "current" }

func encodePointer(seq uint64) []byte {
	b := binary.BigEndian.AppendUint32(make([]byte, 0, pointerBytes), pointerMagic)
	b = binary.BigEndian.AppendUint64(b, seq)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

func decodePointer(b []byte) (uint64, error) {
	if len(b) != pointerBytes || binary.BigEndian.Uint32(b) != pointerMagic ||
		crc32.Checksum(b[:12], crcTable) != binary.BigEndian.Uint32(b[12:]) {
		return 0, fmt.Errorf("%w: bad version pointer", ErrCorrupt)
	}
	return binary.BigEndian.Uint64(b[4:]), nil
}

// LatestVersion returns the newest version's sequence number and body
// under dir, or (0, nil, nil) if none exists. Manifests use it under
// Partition.manifestDir(); the metadata snapshot (topics, configs,
// committed offsets, producer state) uses it under SnapshotDir.
func LatestVersion(ctx context.Context, s ObjectStore, dir string) (uint64, []byte, error) {
	newest, err := latestSeq(ctx, s, dir)
	if err != nil || newest == 0 {
		return 0, nil, err
	}
	body, err := Get(ctx, s, versionKey(dir, newest), maxVersionBytes)
	if err != nil {
		// The pointer names a version that must exist: it is written only
		// after the version.
		return 0, nil, err
	}
	return newest, body, nil
}

// latestSeq returns the newest version's sequence number under dir (0:
// none): the pointer, then a listing of the versions after it.
func latestSeq(ctx context.Context, s ObjectStore, dir string) (uint64, error) {
	var ptr uint64
	b, err := Get(ctx, s, pointerKey(dir), pointerBytes)
	switch {
	case err == nil:
		if ptr, err = decodePointer(b); err != nil {
			return 0, err
		}
	case !errors.Is(err, ErrNotFound):
		return 0, err
	}
	newest := ptr
	startAfter := ""
	if ptr > 0 {
		startAfter = versionKey(dir, ptr-1)
	}
	err = s.List(ctx, dir+"v/", startAfter, func(o ObjectInfo) error {
		seq, perr := strconv.ParseUint(strings.TrimPrefix(o.Key, dir+"v/"), 10, 64)
		if perr == nil && seq > newest {
			newest = seq
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return newest, nil
}

// SnapshotDir is where the broker's metadata snapshot versions live.
const SnapshotDir = "meta/"

// PublishVersion writes version seq (> every existing one) and then moves
// the pointer to it. ErrExists means another writer took seq first. If
// keep > 0, version seq-keep is deleted afterwards (best effort: older
// stragglers from crashes are left for a listing GC).
func PublishVersion(ctx context.Context, s ObjectStore, dir string, seq uint64, body []byte, keep uint64) error {
	if err := publishVersion(ctx, s, dir, seq, body); err != nil {
		return err
	}
	if keep > 0 && seq > keep {
		_ = s.Delete(ctx, versionKey(dir, seq-keep))
	}
	return nil
}

func publishVersion(ctx context.Context, s ObjectStore, dir string, seq uint64, body []byte) error {
	key := versionKey(dir, seq)
	err := s.Put(ctx, key, newBytesReader(body), int64(len(body)), PutOptions{IfNoneMatch: true})
	if errors.Is(err, ErrExists) {
		// A retried request whose first attempt succeeded also lands
		// here: the version is ours if it holds our bytes.
		got, gerr := Get(ctx, s, key, int64(len(body)))
		if gerr != nil || string(got) != string(body) {
			return err
		}
	} else if err != nil {
		return err
	}
	p := encodePointer(seq)
	return s.Put(ctx, pointerKey(dir), newBytesReader(p), int64(len(p)), PutOptions{})
}

// LoadManifest reads p's newest manifest; a partition with none yields an
// empty manifest (Seq 0).
func LoadManifest(ctx context.Context, s ObjectStore, p Partition) (*Manifest, error) {
	dir := p.manifestDir()
	seq, body, err := LatestVersion(ctx, s, dir)
	if err != nil {
		return nil, err
	}
	if body == nil {
		return &Manifest{Part: p}, nil
	}
	m, err := DecodeManifest(body)
	if err != nil {
		return nil, fmt.Errorf("tier: manifest %s: %w", versionKey(dir, seq), err)
	}
	if m.Seq != seq || m.Part != p {
		return nil, fmt.Errorf("%w: manifest %d names seq %d of %s/%d", ErrCorrupt, seq, m.Seq, m.Part.Topic, m.Part.Partition)
	}
	m.fillKeys(nil)
	return m, nil
}

// keepManifestVersions is how many manifest versions stay in the bucket:
// a reader that loaded one a moment ago can still re-read it.
const keepManifestVersions = 4

// PublishManifest writes m (m.Seq must be one past the newest), moves the
// pointer and drops the version keepManifestVersions back.
func PublishManifest(ctx context.Context, s ObjectStore, m *Manifest) error {
	b, err := m.AppendBinary(nil)
	if err != nil {
		return err
	}
	return PublishVersion(ctx, s, m.Part.manifestDir(), m.Seq, b, keepManifestVersions)
}
