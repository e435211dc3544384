// Command health-check assesses resources' health with Argo CD's own code, as its application-controller does
// (controller/cache: gitops-engine's health.GetResourceHealth over util/lua's ResourceHealthOverrides), reading the
// resource customisations from an argocd-cm file the way `argocd admin settings resource-overrides health
// --argocd-cm-path` does (a settings manager over a fake clientset). Arguments: the argocd-cm file, then test files
// in the health_test.yaml form of Argo CD's resource_customizations (tests: [{inputPath, healthStatus}], inputPath
// relative to the test file). It prints one JSON line per case with what Argo CD computed; the caller compares.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/argoproj/argo-cd/gitops-engine/v3/pkg/health"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes/fake"
	"sigs.k8s.io/yaml"

	"github.com/argoproj/argo-cd/v3/pkg/apis/application/v1alpha1"
	"github.com/argoproj/argo-cd/v3/util/lua"
	"github.com/argoproj/argo-cd/v3/util/settings"
)

type healthTests struct {
	Tests []struct {
		InputPath string `json:"inputPath"`
	} `json:"tests"`
}

type result struct {
	TestFile     string               `json:"testFile"`
	InputPath    string               `json:"inputPath"`
	HealthStatus *health.HealthStatus `json:"healthStatus"`
	Error        string               `json:"error,omitempty"`
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: health-check ARGOCD_CM.yaml HEALTH_TEST.yaml...")
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(argocdCM string, testFiles []string) error {
	overrides, err := resourceOverrides(argocdCM)
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	for _, testFile := range testFiles {
		var tests healthTests
		if err := readYAML(testFile, &tests); err != nil {
			return err
		}
		for _, test := range tests.Tests {
			obj := &unstructured.Unstructured{}
			if err := readYAML(filepath.Join(filepath.Dir(testFile), test.InputPath), &obj.Object); err != nil {
				return err
			}
			r := result{TestFile: testFile, InputPath: test.InputPath}
			r.HealthStatus, err = health.GetResourceHealth(obj, lua.ResourceHealthOverrides(overrides))
			if err != nil {
				r.Error = err.Error()
			}
			if err := out.Encode(r); err != nil {
				return err
			}
		}
	}
	return nil
}

// resourceOverrides parses argocd-cm's resource.customizations with Argo CD's settings manager, which finds the
// ConfigMap by name and the app.kubernetes.io/part-of=argocd label, as in a cluster.
func resourceOverrides(argocdCMFile string) (map[string]v1alpha1.ResourceOverride, error) {
	var cm corev1.ConfigMap
	if err := readYAML(argocdCMFile, &cm); err != nil {
		return nil, err
	}
	const namespace = "argocd"
	cm.Namespace = namespace
	cm.Labels = map[string]string{"app.kubernetes.io/part-of": "argocd"}
	secret := &corev1.Secret{}
	secret.Name, secret.Namespace, secret.Labels = "argocd-secret", namespace, cm.Labels
	manager := settings.NewSettingsManager(context.Background(), fake.NewClientset(&cm, secret), namespace)
	if err := manager.ResyncInformers(); err != nil {
		return nil, err
	}
	return manager.GetResourceOverrides()
}

func readYAML(path string, into any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := yaml.Unmarshal(data, into); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
