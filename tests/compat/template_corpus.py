"""Go templates for the differential template test: from Alertmanager's own tests and from public configurations.

Each case is a Slack `text` (rendered through Alertmanager 0.25 and through routing.gotemplate over the same
alerts). `FILES` are `templates:` files; their defines are used by the cases. Sources:
- AM: Alertmanager v0.25 template/template_test.go (TestTemplateExpansion, TestDojoTemplates), Apache-2.0;
- DOC: prometheus.io "Notification template examples";
- public configurations found with the code search (repository named in the comment);
- GO: Go's text/template behaviours that configurations rely on (trim markers, range over maps, printf).
Templates that use functions Alertmanager 0.25 lacks (since, date, humanize...) cannot be loaded by it and are
covered by the unit tests instead.
"""
from __future__ import annotations

FILES = {
    # Alertmanager's TestDojoTemplates (template_test.go), the template part verbatim.
    "dojo.tmpl": r'''{{- /* dojo.subject.stable_text(Data) */ -}}
{{- define "dojo.subject.stable_text" -}}
	{{- if eq .Status "resolved" -}}
		{{- "Resolved: " -}}
	{{- end -}}
	{{- with .GroupLabels -}}
		{{- $groupLabels := . -}}
		{{- with index . "alertname" -}}
			{{- "[" }}{{ . }}{{ "]" -}}
		{{- end -}}
		{{- with .Remove (stringSlice "alertname") -}}
			{{- with index $groupLabels "alertname" -}}
				{{- " " -}}
			{{- end -}}
			{{ "(" }}
			{{- with index .SortedPairs 0 -}}
				{{- .Name }}={{ .Value -}}
			{{- end -}}
			{{- with slice .SortedPairs 1 -}}
				{{- range . -}}
					{{- " " }}{{ .Name }}={{ .Value -}}
				{{- end -}}
			{{- end -}}
			{{ ")" }}
		{{- end -}}
	{{- else -}}
		{{- "Alerts for " -}}{{- .Receiver -}}
	{{- end -}}
{{- end -}}

{{- define "dojo.alert.text" -}}
	{{- $alert := . -}}
	{{- with index .Labels.alertname -}}
		{{- "[" -}}{{ . }}{{- "]" -}}
		{{- with ($alert.Labels.Remove (stringSlice "alertname")).SortedPairs -}}
			{{- " (" }}
			{{- with index . 0 -}}
				{{- .Name }}={{ .Value -}}
			{{- end -}}
			{{- range slice . 1 -}}
				{{- " " }}{{ .Name }}={{ .Value -}}
			{{- end -}}
			{{- ")" }}
		{{- end -}}
	{{- else -}}
		{{- "(" -}}
			{{- with index $alert.Labels.SortedPairs 0 -}}
				{{- .Name }}={{ .Value -}}
			{{- end -}}
			{{- with slice $alert.Labels.SortedPairs 1 -}}
				{{- range . -}}
					{{- " " }}{{ .Name }}={{ .Value -}}
				{{- end -}}
			{{- end -}}
		{{- ")" -}}
	{{- end -}}
	{{- with .Annotations.SortedPairs -}}
		{{- "\nAnnotations:" -}}
		{{- range . -}}
			{{ "\n" }}{{ .Name }}: {{ .Value }}
		{{- end -}}
	{{- end -}}
	{{- with .GeneratorURL -}}
		{{ "\n" }}{{ . }}
	{{- end -}}
{{- end -}}

{{- define "dojo.alerts.text" }}
	{{- with . -}}
		{{- with index . 0 -}}
			{{- template "dojo.alert.text" . -}}
		{{- end -}}
		{{- with slice . 1 -}}
			{{- range . -}}
				{{- "\n\n" }}
				{{- template "dojo.alert.text" . -}}
			{{- end -}}
		{{- end -}}
	{{- end -}}
{{- end -}}

{{- define "dojo.alerts.status_grouped_text" -}}
	{{- if and (gt (len .Firing) 0) (gt (len .Resolved) 0)  }}
		{{- $alerts := . -}}
		{{- with .Firing -}}
			{{- "FIRING:\n\n" -}}
			{{- template "dojo.alerts.text" . -}}
		{{- end -}}
		{{- with .Resolved -}}
			{{- with $alerts.Firing -}}
				{{- "\n\n" -}}
			{{- end -}}
			{{- "RESOLVED:\n\n" -}}
			{{- template "dojo.alerts.text" . -}}
		{{- end -}}
	{{- else -}}
		{{- template "dojo.alerts.text" .Firing -}}
		{{- template "dojo.alerts.text" .Resolved -}}
	{{- end -}}
{{- end -}}

{{- define "dojo.alerts.url.firing" -}}
	{{- "https://paymentsense.grafana.net/alerting/list?" }}
		{{- "dataSource=DataSource" -}}
		{{- "&queryString=" -}}
			{{- "tenant%3D" -}}{{- .CommonLabels.tenant | urlquery -}}{{- "," -}}
			{{- with .CommonLabels.urgency -}}
				{{- "urgency%3D" -}}{{- . | urlquery -}}{{- "," -}}
			{{- end -}}
			{{- with .GroupLabels.Remove (stringSlice "tenant" "urgency") -}}
				{{- range .SortedPairs -}}
					{{- .Name | urlquery -}}{{- "%3D" -}}{{- .Value | urlquery -}}{{- "," -}}
				{{- end -}}
			{{- end -}}
		{{- "&ruleType=alerting" -}}
		{{- "&alertState=firing" -}}
{{- end -}}
''',
    # github.com/shelleg/prometheus-stack docs/am/am-template.md
    "shelleg.tmpl": r'''{{ define "slack.custom.text" }}
{{ range .Alerts }}
{{ .Annotations.description }}
{{ end }}
{{ end }}

{{ define "slack.custom.title" }}
[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] Monitoring Event Notification
{{ end }}

{{ define "slack.custom.text_long" }}
{{ range .Alerts }}
*Alert:* {{ .Annotations.summary }} - `{{ .Labels.severity }}`
 *Description:* {{ .Annotations.description }}
 *Details:*
{{ range .Labels.SortedPairs }} • *{{ .Name }}:* `{{ .Value }}`
{{ end }}
{{ end }}
{{ end }}
''',
    # "Better Slack alerts from Prometheus" (medium.com/quiq-blog), notifications.tmpl
    "quiq.tmpl": r'''{{ define "__single_message_title" }}{{ range .Alerts.Firing }}{{ .Labels.alertname }} @ {{ .Annotations.identifier }}{{ end }}{{ range .Alerts.Resolved }}{{ .Labels.alertname }} @ {{ .Annotations.identifier }}{{ end }}{{ end }}
{{ define "custom_title" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ end }}] {{ if or (and (eq (len .Alerts.Firing) 1) (eq (len .Alerts.Resolved) 0)) (and (eq (len .Alerts.Firing) 0) (eq (len .Alerts.Resolved) 1)) }}{{ template "__single_message_title" . }}{{ end }}{{ end }}
{{ define "custom_slack_message" }}
{{ if or (and (eq (len .Alerts.Firing) 1) (eq (len .Alerts.Resolved) 0)) (and (eq (len .Alerts.Firing) 0) (eq (len .Alerts.Resolved) 1)) }}
{{ range .Alerts.Firing }}{{ .Annotations.description }}{{ end }}{{ range .Alerts.Resolved }}{{ .Annotations.description }}{{ end }}
{{ else }}
{{ if gt (len .Alerts.Firing) 0 }}
*Alerts Firing:*
{{ range .Alerts.Firing }}- {{ .Annotations.identifier }}: {{ .Annotations.description }}
{{ end }}{{ end }}
{{ if gt (len .Alerts.Resolved) 0 }}
*Alerts Resolved:*
{{ range .Alerts.Resolved }}- {{ .Annotations.identifier }}: {{ .Annotations.description }}
{{ end }}{{ end }}
{{ end }}
{{ end }}
''',
    # Grafana-provisioned "slackMessageTitle"/"slackAlertMessage" (public provisioning file), and a file that
    # overrides Alertmanager's own slack.default.text as several public repositories do.
    "overrides.tmpl": r'''{{ define "slackMessageTitle" }}
[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:{{ .Alerts.Firing | len }}{{ if gt (.Alerts.Resolved | len) 0 }}, RESOLVED:{{ .Alerts.Resolved | len }}{{ end }}{{ end }}] {{ .GroupLabels.SortedPairs.Values | join " " }} {{ if gt (len .CommonLabels) (len .GroupLabels) }}({{ with .CommonLabels.Remove .GroupLabels.Names }}{{ .Values | join " " }}{{ end }}){{ end }}
{{ end }}
{{ define "slackAlertMessage" }}
{{ range . }}
{{ range .Annotations.SortedPairs }}
- {{ .Name }} = {{ .Value }}
{{ end }}
{{ end }}
{{ end }}
{{ define "slack.default.text" }}
{{ range .Alerts }}
*Alert:* {{ .Annotations.summary }}{{ if .Labels.severity }} - `{{ .Labels.severity }}`{{ end }}
*Description:* {{ .Annotations.description }}
*Details:*
{{ range .Labels.SortedPairs }}{{ if and (ne .Name "alertname") (ne .Name "severity") }}  • {{ .Name }}: {{ .Value }}
{{ end }}{{ end }}
{{ end }}
{{ end }}
{{ define "slack.default.footer" }}{{ "" }}{{ end }}
{{ define "slack.default.pretext" }}   {{ end }}
''',
}

# (name, text). Several default-template cases render Alertmanager's own definitions.
CASES: list[tuple[str, str]] = [
    # Alertmanager template_test.go TestTemplateExpansion
    ("am-no-action", "abc"),
    ("am-simple-action", '{{ "abc" }}'),
    ("am-toUpper", '{{ "abc" | toUpper }}'),
    ("am-toLower", '{{ "ABC" | toLower }}'),
    ("am-title", '{{ "abc" | title }}'),
    ("am-match-positive", '{{ if match "^a" "abc"}}abc{{ end }}'),
    ("am-match-negative", '{{ if match "abcd" "abc" }}abc{{ end }}'),
    ("am-join", '{{ .CommonLabels.Names | join "," }}'),
    ("am-no-html-escaping", '{{ "<b>" }}'),
    ("am-reReplaceAll", '{{ reReplaceAll "ab" "AB" "abcdabcda"}}'),
    ("am-stringSlice", '{{ with .GroupLabels }}{{ with .Remove (stringSlice "key1" "key3") }}{{ .SortedPairs.Values }}{{ end }}{{ end }}'),
    # Alertmanager TestDojoTemplates
    ("am-dojo-subject", '{{ template "dojo.subject.stable_text" . }}'),
    ("am-dojo-alert", '{{ template "dojo.alert.text" (index .Alerts 0) }}'),
    ("am-dojo-grouped", '{{ template "dojo.alerts.status_grouped_text" .Alerts }}'),
    ("am-dojo-url", '{{ template "dojo.alerts.url.firing" . }}'),
    # Alertmanager's default templates (default.tmpl)
    ("default-title", '{{ template "slack.default.title" . }}'),
    ("default-fallback", '{{ template "slack.default.fallback" . }}'),
    ("default-text-list", '{{ template "__text_alert_list" .Alerts }}'),
    ("default-pagerduty-instances", '{{ template "pagerduty.default.instances" .Alerts.Firing }}'),
    ("default-opsgenie-description", '{{ template "opsgenie.default.description" . }}'),
    ("default-telegram", '{{ template "telegram.default.message" . }}'),
    ("default-discord", '{{ template "discord.default.message" . }}'),
    ("default-webex", '{{ template "webex.default.message" . }}'),
    ("default-wechat", '{{ template "wechat.default.message" . }}'),
    ("default-pushover", '{{ template "pushover.default.message" . }}'),
    ("default-sns", '{{ template "sns.default.message" . }}'),
    ("default-victorops", '{{ template "victorops.default.state_message" . }}'),
    # public configurations
    ("ft-transcendence", '{{ range .Alerts -}}\n*{{ .Labels.job }}* — {{ .Annotations.summary }}\n{{ .Annotations.description }}\n{{ end }}'),
    ("kargo", '{{ if eq .Status "resolved" }}[RESOLVED] {{ end }}{{ .CommonAnnotations.summary }}'),
    ("test-alert", "*Summary*: {{ .CommonAnnotations.summary }}\n*Description*: {{ .CommonAnnotations.description }}\n"),
    ("shelleg-text", '{{ template "slack.custom.text" . }}'),
    ("shelleg-title", '{{ template "slack.custom.title" . }}'),
    ("shelleg-text-long", '{{ template "slack.custom.text_long" . }}'),
    ("quiq-title", '{{ template "custom_title" . }}'),
    ("quiq-message", '{{ template "custom_slack_message" . }}'),
    ("grafana-title", '{{ template "slackMessageTitle" . }}'),
    ("grafana-message", '{{ template "slackAlertMessage" .Alerts }}'),
    ("override-default-text", '{{ template "slack.default.text" . }}'),
    ("sloth", "{{ range .Alerts }}{{ .Annotations.summary }}\n{{ end }}"),
    ("doc-runbook", '{{ range .Alerts }}{{ .Annotations.description }}\n{{ end }}{{ with .CommonLabels.app }}<http://wiki.example/{{ . }}|runbook>{{ end }}'),
    ("k8s-mixin", '{{ range .Alerts }}*Alert:* {{ .Annotations.summary }} - `{{ .Labels.severity }}`\n*Description:* {{ .Annotations.description }}\n*Details:*\n{{ range .Labels.SortedPairs }} • *{{ .Name }}:* `{{ .Value }}`\n{{ end }}{{ end }}'),
    ("pretext-summary", "{{ .CommonAnnotations.summary }}"),
    # Go semantics that configurations rely on
    ("go-trim", "a\n  {{- range .Alerts.Firing }}\n  [{{ .Labels.instance -}} ]\n  {{- end }}\nb"),
    ("go-range-map", "{{ range $k, $v := .CommonLabels }}{{ $k }}={{ $v }};{{ end }}"),
    ("go-printf", '{{ printf "%d alerts, %.2f%% firing, %q, %5s|%-5s|, %v %x" (len .Alerts) 66.666 .Status "ab" "cd" .GroupLabels "hi" }}'),
    ("go-print-values", "{{ .CommonLabels }} | {{ .GroupLabels.SortedPairs }} | {{ (index .Alerts 0).Labels.Names }} | {{ len .Alerts }}"),
    ("go-times", "{{ range .Alerts }}{{ .StartsAt }} {{ .EndsAt }} {{ .StartsAt.Unix }} {{ .StartsAt.Format \"2006-01-02T15:04:05Z07:00 Mon Jan _2 3:04PM .000\" }} {{ .EndsAt.IsZero }}\n{{ end }}"),
    ("go-receiver-quotemeta", "{{ .Receiver }} {{ .ExternalURL }}"),
    ("go-missing-key", "[{{ .CommonLabels.nope }}] [{{ index .CommonAnnotations \"nope\" }}] [{{ .GroupLabels.nope | toUpper }}]"),
    ("go-variables", '{{ $n := 0 }}{{ range $i, $a := .Alerts }}{{ if eq $a.Status "firing" }}{{ $n = $i }}{{ end }}{{ end }}{{ $n }} {{ $.Status }}'),
    ("go-break-continue", '{{ range .Alerts }}{{ if eq .Status "resolved" }}{{ continue }}{{ end }}{{ .Labels.instance }} {{ if .Labels.severity }}{{ break }}{{ end }}{{ end }}'),
    ("go-comparisons", '{{ if gt (len .Alerts) 1 }}many{{ end }} {{ if and (ne .Status "resolved") (le 1 (len .Alerts.Firing)) }}ok{{ end }} {{ lt "a" "b" }} {{ eq .Status "x" "firing" }}'),
    ("go-html-js-urlquery", '{{ html .CommonAnnotations.summary }} {{ js .CommonAnnotations.summary }} {{ urlquery .CommonAnnotations.summary }}'),
    ("go-title-words", '{{ title "hELLO wORLD foo-bar it\'s a_b x.y 1st naïve" }} {{ title .CommonLabels.alertname }}'),
    ("go-regex", '{{ reReplaceAll "(\\\\w+)-(\\\\d+)" "$2:${1}x $$ $9" "db-01 web-22" }} {{ reReplaceAll "a*" "-" "baaac" }} {{ match "^(?i)DISK" .CommonLabels.alertname }}'),
    ("go-slice-index", '{{ slice "abcdef" 1 3 }} {{ index .Alerts.Firing 0 | printf "%T" }} {{ len "héllo" }}'),
    ("go-with-else", "{{ with .CommonAnnotations.runbook }}{{ . }}{{ else }}no runbook{{ end }}"),
    ("go-comments", "x {{- /* a comment */ -}} y {{/* another */}} z"),
    ("go-println", "{{ println .Status (len .Alerts) }}{{ print 1 2 \"a\" 3 }}"),
    ("go-safehtml", '{{ "<b>" | safeHtml }}'),
    ("go-print-structs", '{{ printf "%v" (index .Alerts 0).Labels.SortedPairs }} {{ printf "%+v" (index (index .Alerts 0).Labels.SortedPairs 0) }} {{ printf "%#v" .Status }}'),
    ("go-print-alert", "{{ index .Alerts.Firing 0 }}"),
    ("go-printf-types", '{{ printf "%T %T %T %T %T" .Alerts .CommonLabels (index .Alerts 0).StartsAt .Alerts.Firing (index .Alerts 0) }}'),
    ("go-printf-numbers", '{{ printf "%08.3f|%x|%X|%o|%e|%g|%G|%5.1f%%" 3.14159 255 "hi" 8 1234.5678 0.000012345 1e21 99.95 }}'),
    ("go-printf-strings", '{{ printf "%5.2s|%-8q|%+d|% d|%c|%U|%q" "abcdef" "x" 5 7 65 9731 "é\t" }}'),
    ("go-printf-errors", '{{ printf "%d %s %!" "x" }} {{ printf "%d" 1 2 }} {{ printf "%z" 3 }}'),
    ("go-float-print", "{{ 1e6 }} {{ 1.5e-7 }} {{ 100000.0 }} {{ 123456789.0 }} {{ 0.1 }} {{ -0.0 }} {{ 2.50 }} {{ 0x1p-2 }}"),
    ("go-float-rounding", '{{ printf "%.1f %.0f %.2f %.3g %.10g" 2.25 0.5 1.005 2.5e-5 (print 1) }}'),
    ("go-print-mixed", '{{ print 1 2.5 "x" true nil 3 }} {{ print "a" "b" }} {{ println "x" 1 }}'),
    ("go-comma-join", "{{ range $i, $e := .Alerts }}{{ if $i }}, {{ end }}{{ $e.Labels.instance }}{{ end }}"),
    ("go-with-var", "{{ with $x := .CommonLabels.alertname }}{{ $x | toLower }}-{{ $x }}{{ end }}"),
    ("go-urlquery-map", '{{ urlquery .CommonLabels }} {{ urlquery "a b" "&" 3 }}'),
    ("go-time-format", '{{ (index .Alerts 0).StartsAt.Format "Jan 2, 2006 at 3:04pm (MST) Monday __2" }} {{ (index .Alerts 0).StartsAt.Year }} {{ (index .Alerts 0).StartsAt.Month }} {{ (index .Alerts 0).StartsAt.Weekday }}'),
    ("go-unicode-case", '{{ toUpper "ǆ ß ﬁ ŉ straße" }} {{ toLower "İSTANBUL ΣΑΣ" }} {{ title "ǆemal élan ÉLAN" }} {{ len "ǆ" }}'),
    ("go-regex-idioms", r'{{ reReplaceAll "(?i)DISK" "d" .CommonLabels.alertname }}|{{ reReplaceAll "\\s+" " " "a  \n b" }}|{{ reReplaceAll "^(.{5}).*$" "$1…" .CommonAnnotations.summary }}|{{ reReplaceAll "[^a-z]" "" "AbC-d" }}|{{ match "\\d{2}%" .CommonAnnotations.summary }}'),
    ("go-slice-alerts", "{{ len (slice .Alerts 1) }} {{ range slice .Alerts 0 1 }}{{ .Labels.alertname }}{{ end }}"),
    ("go-html-func-values", '{{ html .CommonLabels }} {{ js .Alerts.Firing | len }} {{ html 1 "<" 2 }}'),
    ("go-eq-multi", '{{ if eq .Status "resolved" "firing" }}y{{ end }} {{ ne (len .Alerts) 0 }} {{ not .Alerts }} {{ and .Status "" "x" }} {{ or "" .Status }}'),
    ("error-index-out-of-range", "{{ index .Alerts 5 }}"),
    ("error-template-undefined", '{{ template "nope" . }}'),
    ("error-field-of-string", "{{ .Status.Foo }}"),
    ("error-bad-string-escape", r'{{ reReplaceAll "\s+" " " "x" }}'),  # "\s" is not a Go string escape
    # errors: Alertmanager fails the notification, nothing is sent
    ("error-unknown-field", "{{ .Nope }}"),
    ("error-bad-comparison", "{{ if eq (len .Alerts) \"1\" }}x{{ end }}"),
    ("error-bad-regex", '{{ reReplaceAll "(" "x" "y" }}'),
    ("error-parse", "{{ .Status "),
]
