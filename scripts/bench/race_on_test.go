//go:build race

package main

// raceEnabled makes TestQuickRun build the tollgate binary with -race too.
const raceEnabled = true
