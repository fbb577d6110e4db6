// Command bench is klite's system benchmark: a franz-go load generator with
// named scenarios, run against klite (built from this tree and started on a
// temporary WAL) or any Kafka-compatible broker (-brokers). It measures the
// machine's physical limits in the same run, repeats every scenario -runs
// times, and writes BENCHMARKS.md with medians, spread, each figure as a
// fraction of its limit, and the brief's targets judged pass or miss.
//
//	go run ./bench                 # full: 3 runs, about 27-29 minutes
//	go run ./bench -quick          # smoke: 1 run, about 2.5 minutes (no tier-*, security-*), prints the report
//	go run ./bench -scenario security -merge   # TLS, SASL, ACL costs, spliced into BENCHMARKS.md
//	go run ./bench -scenario produce-sweep,produce-steady   # the long-lived broker's sweep and steady run
//	go run ./bench -quick -scenario tier   # S3 tiering scenarios on a local versitygw
//	go run ./bench -scenario produce-acks-all,tail-fetch -runs 3
//	go run ./bench -brokers 127.0.0.1:9092 -broker-pid 1234
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/klite/klite/bench/internal/scenario"
)

func main() {
	scenario.MaybeHold() // a child holding idle connections for the connections scenario
	cfg, err := parseFlags(os.Args[1:])
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	code, err := run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	os.Exit(code)
}
