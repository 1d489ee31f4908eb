package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// procSample is what Linux tells about a process at one moment.
type procSample struct {
	at     time.Time
	rssKiB int64
	cpu    time.Duration // user + system
}

// clockTick is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// sampleProc reads VmRSS from /proc/PID/status and the CPU time from
// /proc/PID/stat.
func sampleProc(pid int) (procSample, error) {
	s := procSample{at: time.Now()}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return s, err
	}
	found := false
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(v)
			if len(f) >= 1 {
				s.rssKiB, err = strconv.ParseInt(f[0], 10, 64)
				found = err == nil
			}
		}
	}
	if !found {
		return s, errors.New("no VmRSS in /proc/" + strconv.Itoa(pid) + "/status")
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name is in parentheses and may contain spaces: fields
	// count from the last ')'. utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return s, errors.New("unexpected /proc/PID/stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 13 {
		return s, errors.New("unexpected /proc/PID/stat")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return s, errors.New("unexpected /proc/PID/stat")
	}
	s.cpu = time.Duration(utime+stime) * clockTick
	return s, nil
}

// procDelta is a process's use between two samples.
type procDelta struct {
	RSSBeforeKiB int64   `json:"rss_before_kib"`
	RSSAfterKiB  int64   `json:"rss_after_kib"`
	CPUSeconds   float64 `json:"cpu_seconds"`
	CPUPercent   float64 `json:"cpu_percent"` // of one core, over the interval
}

func deltaOf(a, b procSample) procDelta {
	d := procDelta{RSSBeforeKiB: a.rssKiB, RSSAfterKiB: b.rssKiB, CPUSeconds: (b.cpu - a.cpu).Seconds()}
	if el := b.at.Sub(a.at); el > 0 {
		d.CPUPercent = 100 * float64(b.cpu-a.cpu) / float64(el)
	}
	return d
}
