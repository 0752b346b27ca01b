package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

const (
	kubeDir           = "deploy/kubernetes"
	secretExample     = "secret.example.yaml"
	podIndexFieldPath = "metadata.labels['apps.kubernetes.io/pod-index']"
	readyPath         = "/readyz"
	livePath          = "/healthz"
	// minGrace is the least terminationGracePeriodSeconds: more than
	// SHUTDOWN_GRACE's default of 20s plus the handover, so answers finish after SIGTERM.
	minGrace = 30
)

// decoder decodes manifests strictly into the Kubernetes API types: an
// unknown or duplicated field is an error, as `kubectl apply
// --validate=strict` would make it.
var decoder = func() runtime.Decoder {
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, policyv1.AddToScheme} {
		if err := add(scheme); err != nil {
			panic(err) // the scheme is static: this cannot fail
		}
	}
	return serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
}()

// manifests is what deploy/kubernetes holds, decoded.
type manifests struct {
	configMaps   map[string]*corev1.ConfigMap
	secrets      map[string]*corev1.Secret // from secret.example.yaml
	services     []*corev1.Service
	deployments  []*appsv1.Deployment
	statefulSets []*appsv1.StatefulSet
	pdbs         []*policyv1.PodDisruptionBudget
}

// checkKubernetes decodes every manifest strictly, renders the kustomization
// as `kubectl apply -k` would, and checks the rendered workloads.
func checkKubernetes(root string, f *findings) []string {
	vars, err := parleyVars(root)
	if err != nil {
		f.add("%v", err)
		return nil
	}
	dir := filepath.Join(root, kubeDir)
	var validated []string

	// Each file as written, so that errors name the file.
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		f.add("%s: no manifests (%v)", kubeDir, err)
		return nil
	}
	secrets := map[string]*corev1.Secret{}
	for _, path := range files {
		if filepath.Base(path) == "kustomization.yaml" {
			continue
		}
		objs, err := decodeFile(path)
		if err != nil {
			f.add("%s/%s: %v", kubeDir, filepath.Base(path), err)
			continue
		}
		var kinds []string
		for _, obj := range objs {
			kinds = append(kinds, fmt.Sprintf("%T", obj)[1:])
			if s, ok := obj.(*corev1.Secret); ok {
				if filepath.Base(path) != secretExample {
					f.add("%s/%s: Secret %s holds tokens: keep Secrets in %s only, which is not applied", kubeDir, filepath.Base(path), s.Name, secretExample)
				}
				secrets[s.Name] = s
			}
		}
		validated = append(validated, fmt.Sprintf("%s/%s: strict decode into %s", kubeDir, filepath.Base(path), strings.Join(kinds, ", ")))
	}

	// The kustomization, rendered.
	resources, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		f.add("%s: kustomize build: %v", kubeDir, err)
		return validated
	}
	m := manifests{configMaps: map[string]*corev1.ConfigMap{}, secrets: secrets}
	for _, r := range resources.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			f.add("%s: kustomize build: %s: %v", kubeDir, r.CurId(), err)
			continue
		}
		obj, err := decode(doc)
		if err != nil {
			f.add("%s: kustomize build: %s: %v", kubeDir, r.CurId(), err)
			continue
		}
		switch o := obj.(type) {
		case *corev1.ConfigMap:
			m.configMaps[o.Name] = o
		case *corev1.Secret:
			f.add("%s: kustomization.yaml renders Secret %s: leave Secrets out, or apply -k overwrites the real tokens", kubeDir, o.Name)
		case *corev1.Service:
			m.services = append(m.services, o)
		case *appsv1.Deployment:
			m.deployments = append(m.deployments, o)
		case *appsv1.StatefulSet:
			m.statefulSets = append(m.statefulSets, o)
		case *policyv1.PodDisruptionBudget:
			m.pdbs = append(m.pdbs, o)
		}
	}
	validated = append(validated, fmt.Sprintf("%s: kustomize build: %d resources, each strictly decoded", kubeDir, resources.Size()))
	m.check(vars, f)
	validated = append(validated, fmt.Sprintf("%s: %d Deployment(s), %d StatefulSet(s): probes %s and %s, ports, non-root read-only containers, resources, /tmp for MEDIA_MAX_BYTES, env sources, Discord shards, Services and PodDisruptionBudgets select pods",
		kubeDir, len(m.deployments), len(m.statefulSets), readyPath, livePath))
	return validated
}

// decodeFile strictly decodes each YAML document of the file at path.
func decodeFile(path string) ([]runtime.Object, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	var objs []runtime.Object
	r := utilyaml.NewYAMLReader(bufio.NewReader(file))
	for i := 1; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if js, err := yaml.YAMLToJSON(doc); err == nil && bytes.Equal(bytes.TrimSpace(js), []byte("null")) {
			continue // comments only
		}
		obj, err := decode(doc)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		objs = append(objs, obj)
	}
	if len(objs) == 0 {
		return nil, errors.New("no objects")
	}
	return objs, nil
}

func decode(doc []byte) (runtime.Object, error) {
	obj, gvk, err := decoder.Decode(doc, nil, nil)
	if err != nil {
		return nil, err
	}
	meta, ok := obj.(metav1.Object)
	if !ok {
		return nil, fmt.Errorf("%s has no metadata", gvk.Kind)
	}
	if meta.GetNamespace() != "" {
		return nil, fmt.Errorf("%s %s sets namespace %s: leave it to kubectl or the kustomization", gvk.Kind, meta.GetName(), meta.GetNamespace())
	}
	if errs := validation.IsDNS1123Subdomain(meta.GetName()); len(errs) > 0 {
		return nil, fmt.Errorf("%s name %q: %s", gvk.Kind, meta.GetName(), strings.Join(errs, "; "))
	}
	return obj, nil
}

// workload is a Deployment or a StatefulSet, as the checks see it.
type workload struct {
	kind, name string
	replicas   int32
	selector   *metav1.LabelSelector
	pod        corev1.PodTemplateSpec
	platform   string // "slack" or "discord"
}

func (m *manifests) workloads() []workload {
	var ws []workload
	for _, d := range m.deployments {
		ws = append(ws, workload{"Deployment", d.Name, replicas(d.Spec.Replicas), d.Spec.Selector, d.Spec.Template, "slack"})
	}
	for _, s := range m.statefulSets {
		ws = append(ws, workload{"StatefulSet", s.Name, replicas(s.Spec.Replicas), s.Spec.Selector, s.Spec.Template, "discord"})
	}
	return ws
}

func replicas(n *int32) int32 {
	if n == nil {
		return 1 // the API's default
	}
	return *n
}

func (m *manifests) check(vars map[string]string, f *findings) {
	if len(m.deployments) == 0 && len(m.statefulSets) == 0 {
		f.add("%s: kustomization.yaml renders no Deployment or StatefulSet", kubeDir)
	}
	for _, name := range slices.Sorted(maps.Keys(m.configMaps)) {
		cm := m.configMaps[name]
		for _, key := range slices.Sorted(maps.Keys(cm.Data)) {
			if _, ok := vars[key]; !ok {
				f.add("ConfigMap %s: %s is no variable Parley reads (.env.example lists every one)", name, key)
			}
			if secretVars[key] {
				f.add("ConfigMap %s: %s is a secret: move it to a Secret (%s)", name, key, secretExample)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.secrets)) {
		s := m.secrets[name]
		for _, key := range slices.Sorted(maps.Keys(s.StringData)) {
			if _, ok := vars[key]; !ok {
				f.add("Secret %s (%s): %s is no variable Parley reads", name, secretExample, key)
			}
		}
	}
	ws := m.workloads()
	for _, w := range ws {
		m.checkWorkload(w, vars, f)
	}
	for _, s := range m.statefulSets {
		m.checkShards(s, f)
	}
	for _, svc := range m.services {
		sel := selected(ws, svc.Spec.Selector)
		if len(sel) != 1 {
			f.add("Service %s selects the pods of %d workloads, want one (selector %v)", svc.Name, len(sel), svc.Spec.Selector)
			continue
		}
		w := sel[0]
		for _, p := range svc.Spec.Ports {
			if _, ok := containerPort(w.pod.Spec, p.TargetPort); !ok {
				f.add("Service %s: targetPort %s is no container port of %s %s", svc.Name, p.TargetPort.String(), w.kind, w.name)
			}
		}
	}
	for _, pdb := range m.pdbs {
		sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
		if err != nil {
			f.add("PodDisruptionBudget %s: %v", pdb.Name, err)
			continue
		}
		matched := false
		for _, w := range ws {
			if sel.Matches(labels.Set(w.pod.Labels)) {
				matched = true
				if ma := pdb.Spec.MinAvailable; ma != nil && ma.Type == intstr.Int && ma.IntVal >= w.replicas {
					f.add("PodDisruptionBudget %s: minAvailable %d with %d replicas blocks every node drain", pdb.Name, ma.IntVal, w.replicas)
				}
			}
		}
		if !matched {
			f.add("PodDisruptionBudget %s selects no workload's pods", pdb.Name)
		}
	}
}

func (m *manifests) checkWorkload(w workload, vars map[string]string, f *findings) {
	where := w.kind + " " + w.name
	sel, err := metav1.LabelSelectorAsSelector(w.selector)
	if err != nil || sel.Empty() || !sel.Matches(labels.Set(w.pod.Labels)) {
		f.add("%s: the selector does not match the pod template's labels", where)
	}
	spec := w.pod.Spec
	if spec.TerminationGracePeriodSeconds == nil || *spec.TerminationGracePeriodSeconds < minGrace {
		f.add("%s: terminationGracePeriodSeconds must be at least %d, more than SHUTDOWN_GRACE (20s by default)", where, minGrace)
	}
	if spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken {
		f.add("%s: set automountServiceAccountToken: false: Parley never calls the Kubernetes API", where)
	}
	if psc := spec.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
		f.add("%s: the pod's securityContext needs runAsNonRoot: true", where)
	}
	if len(spec.Containers) != 1 {
		f.add("%s: %d containers, want one (parley)", where, len(spec.Containers))
		return
	}
	c := spec.Containers[0]
	where += " container " + c.Name
	if c.Image == "" || c.Image == "parley" {
		f.add("%s: image %q: kustomization.yaml's images should name the pushed image", where, c.Image)
	}
	if sc := c.SecurityContext; sc == nil ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation ||
		sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		f.add("%s: securityContext needs allowPrivilegeEscalation: false, readOnlyRootFilesystem: true and capabilities drop ALL", where)
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[res]
		lim, okLim := c.Resources.Limits[res]
		switch {
		case !okReq || !okLim:
			f.add("%s: set both a %s request and limit", where, res)
		case req.Cmp(lim) > 0:
			f.add("%s: %s request %s exceeds its limit %s", where, res, req.String(), lim.String())
		case res == corev1.ResourceMemory && lim.Cmp(resource.MustParse("64Mi")) < 0:
			f.add("%s: a memory limit of %s is too small for Parley", where, lim.String())
		}
	}

	// What the container's environment holds, and where from.
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := m.configMaps[from.ConfigMapRef.Name]
			if !ok {
				f.add("%s: envFrom ConfigMap %s is not in the kustomization", where, from.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				env[k] = v
			}
		case from.SecretRef != nil:
			s, ok := m.secrets[from.SecretRef.Name]
			if !ok {
				f.add("%s: envFrom Secret %s is not in %s, which tells people what to create", where, from.SecretRef.Name, secretExample)
				continue
			}
			for k, v := range s.StringData {
				env[k] = v
			}
		}
	}
	for _, e := range c.Env {
		if _, ok := vars[e.Name]; !ok {
			f.add("%s: env %s is no variable Parley reads", where, e.Name)
		}
		env[e.Name] = e.Value
	}
	for _, token := range []struct{ platform, name string }{{"slack", "SLACK_BOT_TOKEN"}, {"discord", "DISCORD_BOT_TOKEN"}} {
		platform, name := token.platform, token.name
		_, has := env[name]
		if platform == w.platform && !has {
			f.add("%s: gets no %s: it would not run %s", where, name, platform)
		}
		if platform != w.platform && has {
			f.add("%s: gets %s too: every replica would also run %s; give each workload its own Secret", where, name, platform)
		}
	}
	if w.replicas > 1 || w.kind == "StatefulSet" {
		if u, err := url.Parse(env["DATABASE_URL"]); err != nil || u.Scheme != "postgres" {
			f.add("%s: several replicas need a postgres:// DATABASE_URL; SQLite is one file in one pod", where)
		}
	}

	// /tmp holds the media files being uploaded, up to MEDIA_MAX_BYTES
	// each: a sizeLimit below twice that evicts the pod on a large file.
	maxMedia := env["MEDIA_MAX_BYTES"]
	if maxMedia == "" {
		maxMedia = vars["MEDIA_MAX_BYTES"]
	}
	if n, err := strconv.ParseInt(maxMedia, 10, 64); err == nil {
		m.checkTmp(where, spec, c, n, f)
	}

	// The probes reach Parley's operators' endpoints: OPS_ADDR, which is
	// HTTP_ADDR when unset.
	addr, name := env["OPS_ADDR"], "OPS_ADDR"
	if addr == "" {
		addr = vars["OPS_ADDR"]
	}
	if addr == "" {
		addr, name = env["HTTP_ADDR"], "HTTP_ADDR"
	}
	if addr == "" {
		addr = vars["HTTP_ADDR"]
	}
	port, _ := strconv.Atoi(listenPort(addr))
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{{"readinessProbe", c.ReadinessProbe, readyPath}, {"livenessProbe", c.LivenessProbe, livePath}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			f.add("%s: needs an httpGet %s on %s", where, p.name, p.path)
			continue
		}
		if p.probe.HTTPGet.Path != p.path {
			f.add("%s: %s path %q, want %s", where, p.name, p.probe.HTTPGet.Path, p.path)
		}
		if n, ok := containerPort(spec, p.probe.HTTPGet.Port); !ok || n != int32(port) {
			f.add("%s: %s port %s is not %s's port %d", where, p.name, p.probe.HTTPGet.Port.String(), name, port)
		}
	}
}

// checkTmp checks that the container's /tmp is an emptyDir with room for
// two media files of maxMedia bytes.
func (m *manifests) checkTmp(where string, spec corev1.PodSpec, c corev1.Container, maxMedia int64, f *findings) {
	var vol string
	for _, vm := range c.VolumeMounts {
		if vm.MountPath == "/tmp" {
			vol = vm.Name
		}
	}
	if vol == "" {
		f.add("%s: mounts no /tmp: the media files answers link to are kept there while they upload", where)
		return
	}
	for _, v := range spec.Volumes {
		if v.Name != vol || v.EmptyDir == nil {
			continue
		}
		want := resource.NewQuantity(2*maxMedia, resource.BinarySI)
		if lim := v.EmptyDir.SizeLimit; lim != nil && lim.Cmp(*want) < 0 {
			f.add("%s: /tmp's sizeLimit %s is less than twice MEDIA_MAX_BYTES (%d): a large media file would evict the pod", where, lim.String(), maxMedia)
		}
		return
	}
	f.add("%s: /tmp is not an emptyDir volume of the pod", where)
}

// checkShards checks a Discord StatefulSet's shard wiring: each pod's
// ordinal is its DISCORD_SHARD_ID, and DISCORD_SHARD_COUNT is the number
// of pods.
func (m *manifests) checkShards(s *appsv1.StatefulSet, f *findings) {
	where := "StatefulSet " + s.Name
	n := replicas(s.Spec.Replicas)
	if len(s.Spec.Template.Spec.Containers) == 0 {
		return
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range s.Spec.Template.Spec.Containers[0].Env {
		env[e.Name] = e
	}
	id, ok := env["DISCORD_SHARD_ID"]
	if !ok || id.ValueFrom == nil || id.ValueFrom.FieldRef == nil || id.ValueFrom.FieldRef.FieldPath != podIndexFieldPath {
		f.add("%s: DISCORD_SHARD_ID must come from fieldRef %s (the pod's ordinal)", where, podIndexFieldPath)
	}
	count, ok := env["DISCORD_SHARD_COUNT"]
	if !ok || count.Value != strconv.Itoa(int(n)) {
		f.add("%s: DISCORD_SHARD_COUNT %q, want %d, the replicas: every shard must have exactly one pod", where, count.Value, n)
	}
	var svc *corev1.Service
	for _, candidate := range m.services {
		if candidate.Name == s.Spec.ServiceName {
			svc = candidate
		}
	}
	switch {
	case svc == nil:
		f.add("%s: serviceName %q is no Service of the kustomization", where, s.Spec.ServiceName)
	case svc.Spec.ClusterIP != corev1.ClusterIPNone:
		f.add("%s: Service %s must be headless (clusterIP: None)", where, svc.Name)
	case !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(s.Spec.Template.Labels)) || len(svc.Spec.Selector) == 0:
		f.add("%s: Service %s does not select its pods", where, svc.Name)
	}
}

// selected returns the workloads whose pods a Service selector selects;
// an empty selector selects none (its Endpoints are managed by hand).
func selected(ws []workload, selector map[string]string) []workload {
	if len(selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(selector)
	var found []workload
	for _, w := range ws {
		if sel.Matches(labels.Set(w.pod.Labels)) {
			found = append(found, w)
		}
	}
	return found
}

// containerPort resolves a port, by name or number, to a container port of
// the pod.
func containerPort(spec corev1.PodSpec, port intstr.IntOrString) (int32, bool) {
	for _, c := range spec.Containers {
		for _, p := range c.Ports {
			if (port.Type == intstr.String && p.Name == port.StrVal) || (port.Type == intstr.Int && p.ContainerPort == port.IntVal) {
				return p.ContainerPort, true
			}
		}
	}
	return 0, false
}
