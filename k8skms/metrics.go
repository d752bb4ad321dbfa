package k8skms

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/status"
)

// metrics are the service's Prometheus metrics.
type metrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "kmsring_kms_plugin_requests_total",
			Help: "Kubernetes KMS v2 calls answered, by method (Status, Encrypt, Decrypt) and gRPC code.",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "kmsring_kms_plugin_request_duration_seconds",
			Help:    "Time to answer a Kubernetes KMS v2 call, by method.",
			Buckets: []float64{25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 5e-3, 25e-3, 100e-3, 1},
		}, []string{"method"}),
	}
}

// observe records a call of method that answered st (nil: OK) and
// started at start.
func (m *metrics) observe(method string, st *status.Status, start time.Time) {
	m.requests.WithLabelValues(method, st.Code().String()).Inc()
	m.duration.WithLabelValues(method).Observe(time.Since(start).Seconds())
}

// Collector returns the service's Prometheus metrics,
// kmsring_kms_plugin_requests_total{method,code} and
// kmsring_kms_plugin_request_duration_seconds{method}, for a registry.
func (s *Service) Collector() prometheus.Collector {
	return collectors{s.metrics.requests, s.metrics.duration}
}

// collectors is several collectors as one.
type collectors []prometheus.Collector

func (c collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, x := range c {
		x.Describe(ch)
	}
}

func (c collectors) Collect(ch chan<- prometheus.Metric) {
	for _, x := range c {
		x.Collect(ch)
	}
}
