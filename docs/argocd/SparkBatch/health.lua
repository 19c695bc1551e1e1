-- Argo CD health check for lakejob.io/SparkBatch (register: docs/argocd/README.md).
local hs = {}
if obj.status == nil or obj.status.state == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the lakejob operator"
  return hs
end
if obj.metadata ~= nil and obj.metadata.generation ~= nil and obj.status.observedGeneration ~= nil
    and obj.status.observedGeneration < obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to observe generation " .. obj.metadata.generation
  return hs
end
local state = obj.status.state
local detail = obj.status.message or ""
if state == "success" then
  hs.status = "Healthy"
elseif state == "running" then
  hs.status = "Healthy"
elseif state == "starting" or state == "recovering" then
  hs.status = "Progressing"
elseif state == "dead" then
  hs.status = "Degraded"
elseif state == "killed" then
  hs.status = "Suspended"
else
  hs.status = "Unknown"
end
hs.message = state
if detail ~= "" then
  hs.message = state .. ": " .. detail
end
return hs
