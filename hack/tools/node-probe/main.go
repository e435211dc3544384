// Command node-probe is the one program of the real node's test image (src/controlplane/images.ts): a static binary
// with no shell around it, whose first argument picks what a container does.
//
//	node-probe serve        answer HTTP on :8080 (a line of Prometheus text) until SIGTERM, then exit 0
//	node-probe exit CODE    exit with CODE at once
//	node-probe allocate     touch memory 16 MiB at a time until the kernel kills it
//	node-probe whoami       ask the API server, through the kubernetes Service and with the Pod's projected
//	                        ServiceAccount token, who this is (a SelfSubjectReview); print {"username": ...} and
//	                        write the name to the termination message, and exit 0 when it answered
package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

const serviceAccount = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	if len(os.Args) < 2 {
		fail(fmt.Errorf("usage: node-probe serve|exit CODE|allocate|whoami"))
	}
	switch os.Args[1] {
	case "serve":
		stop := make(chan os.Signal, 1)
		signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
		http.HandleFunc("/", func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintln(w, "node_probe_up 1")
		})
		go func() { fail(http.ListenAndServe(":8080", nil)) }()
		<-stop
	case "exit":
		code, err := strconv.Atoi(os.Args[len(os.Args)-1])
		if err != nil {
			fail(err)
		}
		os.Exit(code)
	case "allocate":
		var held [][]byte
		for {
			chunk := make([]byte, 16<<20)
			// Pages are only charged to the cgroup once written.
			for i := 0; i < len(chunk); i += 4096 {
				chunk[i] = 1
			}
			held = append(held, chunk)
			fmt.Printf("holding %d MiB\n", len(held)*16)
		}
	case "whoami":
		user, err := whoami()
		if err != nil {
			fail(err)
		}
		// One JSON line, which the tests read back through the API server (the Pod's log).
		line, _ := json.Marshal(map[string]string{"username": user})
		fmt.Println(string(line))
		_ = os.WriteFile("/dev/termination-log", []byte(user), 0o644)
	default:
		fail(fmt.Errorf("unknown mode %q", os.Args[1]))
	}
}

func whoami() (string, error) {
	token, err := os.ReadFile(serviceAccount + "/token")
	if err != nil {
		return "", err
	}
	ca, err := os.ReadFile(serviceAccount + "/ca.crt")
	if err != nil {
		return "", err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(ca) {
		return "", fmt.Errorf("no certificate in %s/ca.crt", serviceAccount)
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}},
	}
	// The kubelet sets these to the kubernetes Service's ClusterIP and port, as in-cluster clients read them.
	host := net.JoinHostPort(os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT"))
	body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	req, err := http.NewRequest(http.MethodPost, "https://"+host+"/apis/authentication.k8s.io/v1/selfsubjectreviews", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+string(bytes.TrimSpace(token)))
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	answer, err := io.ReadAll(res.Body)
	if err != nil {
		return "", err
	}
	if res.StatusCode != http.StatusCreated {
		return "", fmt.Errorf("%s answered %s: %s", host, res.Status, answer)
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string `json:"username"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(answer, &review); err != nil {
		return "", err
	}
	return review.Status.UserInfo.Username, nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "node-probe:", err)
	_ = os.WriteFile("/dev/termination-log", []byte(err.Error()), 0o644)
	os.Exit(1)
}
