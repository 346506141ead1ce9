-- Argo CD health of events.ngrok.io/EventDestination and events.ngrok.io/EventSubscription, from
-- the kstatus conditions the operator writes (Ready, Reconciling, Stalled) alike for both kinds.
-- Lua 5.1, as Argo CD runs it. Install it under both
-- resource.customizations.health.events.ngrok.io_EventDestination and
-- resource.customizations.health.events.ngrok.io_EventSubscription in argocd-cm: argocd/argocd-cm.yaml
-- is that ConfigMap, ready to apply (see README).
local hs = {status = "Progressing", message = "Waiting for the operator"}

local function condition(conditions, type_)
  if conditions == nil then return nil end
  for _, c in ipairs(conditions) do
    if c.type == type_ then return c end
  end
  return nil
end

local function describe(c)
  if c == nil then return "" end
  local reason = c.reason or ""
  local message = c.message or ""
  if reason ~= "" and message ~= "" then return reason .. ": " .. message end
  return reason .. message
end

local metadata = obj.metadata or {}
if metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "Deleting: the operator removes the object from ngrok (or retains it) before the finalizer is released"
  return hs
end

local status = obj.status
if status == nil then
  return hs
end
if metadata.generation ~= nil and (status.observedGeneration == nil or status.observedGeneration < metadata.generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the operator to reconcile generation " .. tostring(metadata.generation)
  return hs
end

local conditions = status.conditions
local stalled = condition(conditions, "Stalled")
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = describe(stalled)
  return hs
end

local ready = condition(conditions, "Ready")
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = describe(ready)
  return hs
end

local annotations = metadata.annotations or {}
if annotations["events.ngrok.io/paused"] == "true" or (ready ~= nil and ready.reason == "Paused") then
  hs.status = "Suspended"
  hs.message = describe(ready)
  if hs.message == "" then hs.message = "Paused by annotation events.ngrok.io/paused" end
  return hs
end

-- Observe mode (events.ngrok.io/management: observe) with differences: nothing is written to
-- ngrok until a person reads status.drift and lets the operator manage the resource.
if ready ~= nil and ready.reason == "Observing" then
  hs.status = "Suspended"
  hs.message = describe(ready)
  return hs
end

local reconciling = condition(conditions, "Reconciling")
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = describe(reconciling)
elseif ready ~= nil then
  hs.message = describe(ready)
end
return hs
