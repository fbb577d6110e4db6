package main

import (
	"bytes"
	"flag"
	"io"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/klite/klite/kafka"
	"github.com/klite/klite/vfs"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigDefaults(t *testing.T) {
	cfg, err := parseConfig(nil, env(nil), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg != defaultConfig() {
		t.Fatalf("parsed %+v, want the defaults %+v", cfg, defaultConfig())
	}
}

func TestConfigEnvAndFlags(t *testing.T) {
	e := env(map[string]string{
		"KLITE_LISTEN":             "127.0.0.1:1234",
		"KLITE_MAX_CONNS":          "7",
		"KLITE_FSYNC_LINGER":       "2ms",
		"KLITE_AUTO_CREATE_TOPICS": "false",
	})
	cfg, err := parseConfig([]string{"-max-conns", "9"}, e, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:1234" || cfg.FsyncLinger != 2*time.Millisecond || cfg.AutoCreateTopics {
		t.Errorf("environment not applied: %+v", cfg)
	}
	if cfg.MaxConns != 9 {
		t.Errorf("flag should win over environment: max-conns %d", cfg.MaxConns)
	}

	cfg, err = parseConfig([]string{"-s3-prefix", "p/", "-retention-ms", "-1"}, env(map[string]string{
		"KLITE_S3_BUCKET":         "b",
		"KLITE_S3_ENDPOINT":       "http://127.0.0.1:7070",
		"KLITE_S3_FLUSH_INTERVAL": "5s",
		"KLITE_WAL_HOT_BYTES":     "1048576",
		"KLITE_RETENTION_BYTES":   "1000000",
	}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.S3Bucket != "b" || cfg.S3Prefix != "p/" || cfg.S3Endpoint != "http://127.0.0.1:7070" || cfg.S3Region != "us-east-1" ||
		cfg.S3FlushInterval != 5*time.Second || cfg.WALHotBytes != 1<<20 || cfg.RetentionMs != -1 || cfg.RetentionBytes != 1000000 {
		t.Errorf("tiering and retention settings not applied: %+v", cfg)
	}

	cfg, err = parseConfig(nil, env(map[string]string{
		"KLITE_GROUP_METADATA_MAX_BYTES": "2097152",
		"KLITE_OFFSETS_LOG_REPAIR":       "true",
	}), &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	if g := groupConfig(cfg, nil, "cluster", zerolog.Nop()); g.MaxGroupMetadataBytes != 2<<20 || !g.RepairLog {
		t.Errorf("group metadata limit and offsets log repair not passed to group.Config: %+v", g)
	}
}

func TestConfigInvalid(t *testing.T) {
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{[]string{"-listen", "nohost"}, nil, "-listen"},
		{[]string{"-log-format", "xml"}, nil, "-log-format"},
		{[]string{"-log-level", "loud"}, nil, "-log-level"},
		{[]string{"-segment-bytes", "100"}, nil, "-segment-bytes"},
		{[]string{"-max-message-bytes", "10"}, nil, "-max-message-bytes"},
		{[]string{"-max-decompressed-batch-bytes", "2147483648"}, nil, "-max-decompressed-batch-bytes"},
		{[]string{"-max-request-bytes", "2000", "-max-message-bytes", "4000"}, nil, "-max-request-bytes"},
		{[]string{"-default-partitions", "0"}, nil, "-default-partitions"},
		{[]string{"-shards", "-1"}, nil, "-shards"},
		{[]string{"-fsync-linger", "1s"}, nil, "-fsync-linger"},
		{[]string{"-segment-prealloc", "sparse"}, nil, "-segment-prealloc"},
		{[]string{"-default-partitions", "20", "-max-topic-partitions", "10"}, nil, "-default-partitions"},
		{[]string{"-node-id", "-1"}, nil, "-node-id"},
		{[]string{"-advertise", "::1"}, nil, "-advertise"},
		{[]string{"-advertise", "host:99999"}, nil, "-advertise"},
		{[]string{"-listen", "SSL://:9093"}, nil, "-tls-cert"},
		{[]string{"-tls-cert", "c.pem"}, nil, "-tls-key"},
		{[]string{"-listen", "SASL_SSL://:9093"}, nil, "need -tls-cert and -tls-key"},
		{[]string{"-listen", "TLS://:9093"}, nil, "unknown security protocol"},
		{[]string{"-listen", ":9092,"}, nil, "-listen"},
		{[]string{"-listen", ":9092,SSL://:9093", "-advertise", "h:1", "-tls-cert", "c", "-tls-key", "k"}, nil, "1 entries for 2 listeners"},
		{[]string{"-listen", ":9092,:9093", "-advertise", ",host:99999"}, nil, "-advertise"},
		{[]string{"-tls-handshake-timeout", "0s"}, nil, "-tls-handshake-timeout"},
		{[]string{"-tls-max-handshakes", "0"}, nil, "-tls-max-handshakes"},
		{[]string{"-idle-timeout", "-1s"}, nil, "-idle-timeout"},
		{[]string{"-retention-ms", "0"}, nil, "-retention-ms"},
		{[]string{"-retention-ms", "-2"}, nil, "-retention-ms"},
		{[]string{"-retention-bytes", "-5"}, nil, "-retention-bytes"},
		{[]string{"-retention-check-interval", "0s"}, nil, "-retention-check-interval"},
		{[]string{"-group-consumer-max-regex-bytes", "0"}, nil, "-group-consumer-max-regex-bytes"},
		{[]string{"-wal-max-bytes", "-1"}, nil, "-wal-max-bytes"},
		{[]string{"-wal-max-bytes", "1048576", "-segment-bytes", "1048576"}, nil, "-wal-max-bytes"},
		{[]string{"-wal-hot-bytes", "0"}, nil, "-wal-hot-bytes"},
		{[]string{"-s3-prefix", "klite/"}, nil, "-s3-bucket"},
		{[]string{"-s3-bucket", "b", "-s3-endpoint", "localhost:9000"}, nil, "-s3-endpoint"},
		{[]string{"-s3-bucket", "b", "-s3-region", ""}, nil, "-s3-region"},
		{[]string{"-s3-flush-interval", "0s"}, nil, "-s3-flush-interval"},
		{[]string{"-s3-object-bytes", "1000"}, nil, "-s3-object-bytes"},
		{[]string{"-s3-cache-bytes", "0"}, nil, "-s3-cache-bytes"},
		{[]string{"-offset-metadata-max-bytes", "16777217"}, nil, "-offset-metadata-max-bytes"},
		{[]string{"-group-metadata-max-bytes", "100"}, nil, "-group-metadata-max-bytes"},
		{[]string{"-group-metadata-max-bytes", "67108865"}, nil, "-group-metadata-max-bytes"},
		{nil, map[string]string{"KLITE_S3_OBJECT_BYTES": "lots"}, "KLITE_S3_OBJECT_BYTES"},
		{[]string{"extra"}, nil, "unexpected arguments"},
		{nil, map[string]string{"KLITE_MAX_CONNS": "many"}, "KLITE_MAX_CONNS"},
	} {
		_, err := parseConfig(c.args, env(c.env), &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: error %v, want one naming %s", c.args, c.env, err, c.want)
		}
	}
}

func TestAdvertised(t *testing.T) {
	bound := &net.TCPAddr{IP: net.IPv4zero, Port: 40123}
	for _, c := range []struct {
		advertise, listen string
		want              string
		warn              bool
	}{
		{"", ":9092", "127.0.0.1:40123", true},
		{"", "0.0.0.0:0", "127.0.0.1:40123", true},
		{"", "[::]:0", "127.0.0.1:40123", true},
		{"", "127.0.0.1:0", "127.0.0.1:40123", false},
		{"", "10.1.2.3:9092", "10.1.2.3:40123", false},
		{"kafka.example.com:9093", ":9092", "kafka.example.com:9093", false},
		{"kafka.example.com", ":9092", "kafka.example.com:40123", false},
		{"0.0.0.0:9092", ":9092", "0.0.0.0:9092", true},
		{"[::]:9092", ":9092", "[::]:9092", true},
	} {
		hp, warn := advertised(c.advertise, c.listen, bound)
		if hp.String() != c.want || (warn != "") != c.warn {
			t.Errorf("advertise %q listen %q: %s (warn %q), want %s (warn %v)", c.advertise, c.listen, hp, warn, c.want, c.warn)
		}
	}
}

// TestHelp checks that -h documents every flag with its environment variable
// scheme, and exits 0.
func TestHelp(t *testing.T) {
	var out bytes.Buffer
	if code := run([]string{"-h"}, env(nil), &out); code != 0 {
		t.Fatalf("-h exit code %d", code)
	}
	cfg := defaultConfig()
	newFlagSet(&cfg, io.Discard).VisitAll(func(f *flag.Flag) {
		if !strings.Contains(out.String(), "  -"+f.Name+" ") && !strings.Contains(out.String(), "  -"+f.Name+"\n") {
			t.Errorf("-h does not document -%s", f.Name)
		}
	})
	if !strings.Contains(out.String(), "KLITE_") {
		t.Error("-h does not mention the environment variables")
	}

	// The real binary, too, and a bad flag exits 2.
	if out, err := exec.Command(kliteBin, "-h").CombinedOutput(); err != nil {
		t.Errorf("klite -h: %v\n%s", err, out)
	}
	err := exec.Command(kliteBin, "-no-such-flag").Run()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("klite -no-such-flag: %v, want exit code 2", err)
	}
}

func TestClusterIDKept(t *testing.T) {
	dir := t.TempDir()
	a, err := openWALDir(vfs.OSFS{}, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := openWALDir(vfs.OSFS{}, dir, "")
	if err != nil || a != b || len(a) != 22 {
		t.Fatalf("cluster ids %q then %q (%v): want one stable 22-char id", a, b, err)
	}
	if c, err := openWALDir(vfs.OSFS{}, dir, "configured"); err != nil || c != "configured" {
		t.Fatalf("configured cluster id: %q, %v", c, err)
	}
}

// TestClusterIDSurvivesCrash: a power loss right after the first start
// (nothing synced by anyone else since) brings back the same cluster id,
// in a -wal directory that is itself new, whatever happened to the
// writes the kernel had not flushed.
func TestClusterIDSurvivesCrash(t *testing.T) {
	for _, mode := range []vfs.CrashMode{vfs.CrashDropUnsynced, vfs.CrashKeepUnsynced, vfs.CrashTorn} {
		mem := vfs.NewMemFS()
		id, err := openWALDir(mem, "/data/wal", "")
		if err != nil {
			t.Fatal(err)
		}
		crashed := mem.CrashClone(mode, uint64(mode)+1)
		again, err := openWALDir(crashed, "/data/wal", "")
		if err != nil || again != id {
			t.Fatalf("crash mode %d: cluster id %q before the crash, %q (%v) after", mode, id, again, err)
		}
	}
}

// TestReadmeFlags keeps README.md's flag table in step with the flags: every
// flag has a row naming its environment variable and its default.
func TestReadmeFlags(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(readme), "\n") {
		if strings.HasPrefix(line, "| `-") {
			name := strings.Fields(strings.Trim(strings.SplitN(line, "|", 3)[1], " `"))[0]
			rows[strings.TrimPrefix(name, "-")] = line
		}
	}
	cfg := defaultConfig()
	newFlagSet(&cfg, io.Discard).VisitAll(func(f *flag.Flag) {
		row, ok := rows[f.Name]
		if !ok {
			t.Errorf("README.md has no row for -%s", f.Name)
			return
		}
		delete(rows, f.Name)
		def := "(empty)"
		if f.DefValue != "" {
			def = "`" + f.DefValue + "`"
		}
		if !strings.Contains(row, "`"+envName(f.Name)+"`") || !strings.Contains(row, "| "+def+" |") {
			t.Errorf("README.md row for -%s lacks `%s` or default %s:\n%s", f.Name, envName(f.Name), def, row)
		}
	})
	for name := range rows {
		t.Errorf("README.md documents -%s, which does not exist", name)
	}
}

func TestParseListeners(t *testing.T) {
	got, err := parseListeners("127.0.0.1:0, ssl://:9093,PLAINTEXT://[::1]:9094")
	if err != nil {
		t.Fatal(err)
	}
	want := []listenSpec{{kafka.Plaintext, "127.0.0.1:0"}, {kafka.SSL, ":9093"}, {kafka.Plaintext, "[::1]:9094"}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	cfg, err := parseConfig([]string{"-listen", "PLAINTEXT://:0,SSL://:0", "-advertise", ",ext.example:9093",
		"-tls-cert", "c.pem", "-tls-key", "k.pem"}, env(nil), &bytes.Buffer{})
	if err != nil || cfg.TLSCert != "c.pem" {
		t.Fatalf("cfg %+v, err %v", cfg, err)
	}
}
