package envoy

import (
	"bytes"
	"flag"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite the shipped Envoy configs from envoy.yaml.tmpl")

// shippedConfigs are the committed configs and the params they are rendered from.
var shippedConfigs = []struct {
	file   string
	params Params
}{
	{
		file: "envoy.yaml",
		params: Params{
			ListenerAddress:      "0.0.0.0:4000",
			AdminAddress:         "127.0.0.1:9901",
			ExtProcAddress:       "127.0.0.1:50051",
			TollgateAdminAddress: "127.0.0.1:4001",
			UpstreamAddress:      "127.0.0.1:8081",
		},
	},
	{
		file: "envoy.compose.yaml",
		params: Params{
			ListenerAddress:      "0.0.0.0:4000",
			AdminAddress:         "0.0.0.0:9901",
			ExtProcAddress:       "tollgate:50051",
			TollgateAdminAddress: "tollgate:4001",
			UpstreamAddress:      "mockllm:8081",
		},
	},
}

func TestShippedConfigs(t *testing.T) {
	for _, c := range shippedConfigs {
		t.Run(c.file, func(t *testing.T) {
			want, err := Render(c.params)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if *update {
				if err := os.WriteFile(c.file, want, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := os.ReadFile(c.file)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("%s is out of date with envoy.yaml.tmpl; run go test ./envoy -run TestShippedConfigs -update (-committed +rendered):\n%s",
					c.file, cmp.Diff(string(got), string(want)))
			}
		})
	}
}
