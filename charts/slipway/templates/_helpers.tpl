{{/* Chart name, truncated to the 63 characters a DNS label allows. */}}
{{- define "slipway.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: the release name, plus the chart name unless the release name contains it. */}}
{{- define "slipway.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "slipway.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "slipway.selectorLabels" -}}
app.kubernetes.io/name: {{ include "slipway.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "slipway.labels" -}}
helm.sh/chart: {{ include "slipway.chart" . }}
{{ include "slipway.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "slipway.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "slipway.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Whether the chart creates the Secret with Git credentials and webhook secrets. */}}
{{- define "slipway.createSecret" -}}
{{- $g := .Values.git }}
{{- $w := .Values.webhooks }}
{{- if and (not $g.existingSecret) (or $g.token $g.username $g.password $g.sshKey $g.sshKeyPassphrase $w.gitlabToken $w.githubSecret) }}true{{ end }}
{{- end }}

{{/* The Secret the credentials are read from: the existing one, the chart's, or none. */}}
{{- define "slipway.secretName" -}}
{{- if .Values.git.existingSecret }}
{{- .Values.git.existingSecret }}
{{- else if include "slipway.createSecret" . }}
{{- printf "%s-git" (include "slipway.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Environment variables read from the Secret: variable name → Secret key. Every key is optional,
so an existing Secret only needs the ones in use.
*/}}
{{- define "slipway.secretEnv" -}}
SLIPWAY_GIT_TOKEN: token
SLIPWAY_GIT_USERNAME: username
SLIPWAY_GIT_PASSWORD: password
SLIPWAY_GIT_SSH_KEY: sshKey
SLIPWAY_GIT_SSH_KEY_PASSPHRASE: sshKeyPassphrase
SLIPWAY_GITLAB_WEBHOOK_TOKEN: gitlabWebhookToken
SLIPWAY_GITHUB_WEBHOOK_SECRET: githubWebhookSecret
{{- end }}

{{- define "slipway.knownHostsDir" -}}/etc/slipway/ssh{{- end }}
