{{/*
Names, labels and the two generated files. The instance file and the workspace file are built as
dicts and written with toYaml, so values can never break their YAML; the tests load both with
runyard's own loaders.
*/}}

{{/* At most 36 characters: "<fullname>-code-<location, at most 20>" stays within a DNS label. */}}
{{- define "runyard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 36 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 36 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "runyard.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "runyard.labels" -}}
{{ include "runyard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "runyard.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "runyard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "runyard.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{- define "runyard.configMapName" -}}{{ include "runyard.fullname" . }}-instance{{- end -}}
{{- define "runyard.webuiName" -}}{{ include "runyard.fullname" . }}-webui{{- end -}}
{{- define "runyard.daemonName" -}}{{ include "runyard.fullname" . }}-daemon{{- end -}}

{{/* The Secret and key holding the PostgreSQL URL; the key is also the variable's name. */}}
{{- define "runyard.pgSecretName" -}}
{{- if .Values.postgres.existingSecret -}}
{{- .Values.postgres.existingSecret.name -}}
{{- else -}}
{{- include "runyard.fullname" . }}-postgres
{{- end -}}
{{- end -}}
{{- define "runyard.pgEnvName" -}}
{{- if .Values.postgres.existingSecret -}}
{{- .Values.postgres.existingSecret.key | default "RUNYARD_PG_URL" -}}
{{- else -}}
RUNYARD_PG_URL
{{- end -}}
{{- end -}}

{{- define "runyard.tokenSecretName" -}}
{{- if .Values.codeServerToken.existingSecret -}}
{{- .Values.codeServerToken.existingSecret.name -}}
{{- else -}}
{{- include "runyard.fullname" . }}-code-server-token
{{- end -}}
{{- end -}}
{{- define "runyard.tokenSecretKey" -}}
{{- if .Values.codeServerToken.existingSecret -}}
{{- .Values.codeServerToken.existingSecret.key | default "token" -}}
{{- else -}}
token
{{- end -}}
{{- end -}}

{{/* The environment every runyard service container gets: home, the storage URL, the token. */}}
{{- define "runyard.serviceEnv" -}}
- name: RUNYARD_HOME
  value: {{ .Values.runyardHome | quote }}
- name: {{ include "runyard.pgEnvName" . }}
  valueFrom:
    secretKeyRef:
      name: {{ include "runyard.pgSecretName" . }}
      key: {{ include "runyard.pgEnvName" . }}
- name: RUNYARD_CODE_SERVER_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "runyard.tokenSecretName" . }}
      key: {{ include "runyard.tokenSecretKey" . }}
{{- end -}}

{{/* The storage section: the URL only by reference, never its value. */}}
{{- define "runyard.storage" -}}
{{- $pg := merge (dict "url" (dict "env" (include "runyard.pgEnvName" .))) (deepCopy .Values.postgres.settings) -}}
{{- toYaml (dict "postgres" $pg) -}}
{{- end -}}

{{- define "runyard.launcher" -}}
{{- if eq .Values.launcher.type "k8s" -}}
{{- $v := .Values.launcher.k8s -}}
{{- $cfg := deepCopy $v.config -}}
{{- $volumes := concat (list (dict "name" "runyard-home" "emptyDir" (dict))) ($cfg.volumes | default list) -}}
{{- $mounts := concat (list (dict "name" "runyard-home" "mountPath" .Values.runyardHome)) ($cfg.volume_mounts | default list) -}}
{{- $_ := set $cfg "in_cluster" true -}}
{{- $_ := set $cfg "namespace" .Release.Namespace -}}
{{- $_ := set $cfg "service_account" (include "runyard.serviceAccountName" .) -}}
{{- $_ := set $cfg "instance_config_map" (include "runyard.configMapName" .) -}}
{{- $_ := set $cfg "env_from_secrets" (concat (list (include "runyard.pgSecretName" .)) $v.envFromSecrets) -}}
{{- $_ := set $cfg "home" .Values.runyardHome -}}
{{- $_ := set $cfg "volumes" $volumes -}}
{{- $_ := set $cfg "volume_mounts" $mounts -}}
{{- if .Values.imagePullSecrets -}}
{{- $_ := set $cfg "image_pull_secrets" (concat .Values.imagePullSecrets ($cfg.image_pull_secrets | default list) | uniq) -}}
{{- end -}}
{{- if $v.image -}}{{- $_ := set $cfg "image" $v.image -}}{{- end -}}
{{- toYaml (dict "k8s" $cfg) -}}
{{- else -}}
{{- $v := .Values.launcher.docker -}}
{{- $cfg := deepCopy $v.config -}}
{{- $_ := set $cfg "docker_host" $v.dockerHost -}}
{{- /* the services run in containers: their home is no host path */ -}}
{{- $_ := set $cfg "mount_home" false -}}
{{- $_ := set $cfg "env_vars" (concat (list (include "runyard.pgEnvName" .)) ($cfg.env_vars | default list) | uniq) -}}
{{- if $v.image -}}{{- $_ := set $cfg "image" $v.image -}}{{- end -}}
{{- if $v.network -}}{{- $_ := set $cfg "network" $v.network -}}{{- end -}}
{{- toYaml (dict "docker" $cfg) -}}
{{- end -}}
{{- end -}}

{{/* The instance file: what the daemon, the migration Job and the run pods read. */}}
{{- define "runyard.instanceDict" -}}
{{- $inst := dict -}}
{{- range $key, $value := .Values.instance.settings -}}
{{- $_ := set $inst $key $value -}}
{{- end -}}
{{- if .Values.daemon.metrics.enabled -}}
{{- /* merged into the user's daemon keys; run pods read these two too, and ignore them */ -}}
{{- $daemon := deepCopy (.Values.instance.settings.daemon | default dict) -}}
{{- $_ := set $daemon "metrics_port" (int .Values.daemon.metrics.port) -}}
{{- $_ := set $daemon "metrics_host" "0.0.0.0" -}}
{{- $_ := set $inst "daemon" $daemon -}}
{{- end -}}
{{- $_ := set $inst "storage" (include "runyard.storage" . | fromYaml) -}}
{{- $_ := set $inst "run_coordinator" (dict "queued" .Values.instance.runCoordinator) -}}
{{- $_ := set $inst "run_launcher" (include "runyard.launcher" . | fromYaml) -}}
{{- toYaml $inst -}}
{{- end -}}

{{/* The Host names the web UI accepts: its Service's names, the Ingress host, allowedHosts. */}}
{{- define "runyard.webuiAllowedHosts" -}}
{{- $svc := include "runyard.webuiName" . -}}
{{- $hosts := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf ".%s.svc.cluster.local" .Release.Namespace) -}}
{{- if .Values.ingress.enabled -}}{{- $hosts = append $hosts .Values.ingress.host -}}{{- end -}}
{{- toYaml (dict "hosts" (concat $hosts .Values.webui.allowedHosts | uniq)) -}}
{{- end -}}

{{/* The web UI's file: the instance file plus the webui section (runyard-webui must be installed
wherever a file with that section is read, so run pods get the file without it). */}}
{{- define "runyard.webuiInstanceDict" -}}
{{- $inst := include "runyard.instanceDict" . | fromYaml -}}
{{- $w := deepCopy .Values.webui.settings -}}
{{- $_ := set $w "host" "0.0.0.0" -}}
{{- $_ := set $w "port" .Values.webui.port -}}
{{- $_ := set $w "read_only" .Values.webui.readOnly -}}
{{- $_ := set $w "allowed_hosts" (include "runyard.webuiAllowedHosts" . | fromYaml).hosts -}}
{{- if .Values.webui.auth.enabled -}}
{{- $_ := set $w "auth" (dict "username" .Values.webui.auth.username "password" (dict "env" "RUNYARD_WEBUI_PASSWORD")) -}}
{{- end -}}
{{- $_ := set $inst "webui" $w -}}
{{- toYaml $inst -}}
{{- end -}}

{{/* The pod annotations of Prometheus's annotation-driven discovery, for a pod serving /metrics
on `port`. Only a convention: a scrape config must act on them (docs/metrics.md). */}}
{{- define "runyard.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | int | toString | quote }}
prometheus.io/path: /metrics
{{- end -}}

{{/* Whether the web UI's pods invite a scrape: its /metrics is served (webui.metrics_enabled, on by
default) and answers without credentials (no webui.auth). "true" or empty. */}}
{{- define "runyard.webuiScraped" -}}
{{- $served := true -}}
{{- if hasKey .Values.webui.settings "metrics_enabled" -}}{{- $served = .Values.webui.settings.metrics_enabled -}}{{- end -}}
{{- if and $served (not .Values.webui.auth.enabled) -}}true{{- end -}}
{{- end -}}

{{- define "runyard.codeLocationName" -}}
{{- printf "%s-code-%s" (include "runyard.fullname" .root) .location.name -}}
{{- end -}}

{{- define "runyard.codeLocationImage" -}}
{{- printf "%s:%s" .image.repository (.image.tag | toString) -}}
{{- end -}}

{{/* The workspace file: one code_server entry per code location. */}}
{{- define "runyard.workspaceDict" -}}
{{- $entries := list -}}
{{- range .Values.codeLocations -}}
{{- $entry := dict "host" (printf "%s.%s.svc" (include "runyard.codeLocationName" (dict "root" $ "location" .)) $.Release.Namespace) "port" (.port | default 4000) "location_name" .name "token" (dict "env" "RUNYARD_CODE_SERVER_TOKEN") "image" (include "runyard.codeLocationImage" .) -}}
{{- if .containerContext -}}{{- $_ := set $entry "container_context" .containerContext -}}{{- end -}}
{{- $entries = append $entries (dict "code_server" $entry) -}}
{{- end -}}
{{- toYaml (dict "load_from" $entries) -}}
{{- end -}}

{{- define "runyard.podScheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}
