#include "desk_session.h"

void DeskSession::moveTo(State s) {
  if (s == m_state) return;
  m_state = s;
  emit stateChanged(s);
}

DeskSession::State DeskSession::withoutDocument() const {
  if (m_modelIn) return State::NoDocument;
  if (m_loading) return State::LoadingModel;
  return m_modelConfigured ? State::ModelFailed : State::NoModel;
}

void DeskSession::noModelToLoad(bool modelConfigured) {
  m_modelConfigured = modelConfigured;
  if (!m_modelIn) moveTo(withoutDocument());
}

void DeskSession::modelLoadStarted() {
  m_loading = true;
  m_modelConfigured = true;
  if (m_state == State::Ready || m_state == State::Answering) m_reopenAfterLoad = m_documentId;
  if (!m_modelIn) moveTo(State::LoadingModel);
}

qint64 DeskSession::modelLoaded() {
  m_loading = false;
  m_modelIn = true;
  if (m_state == State::LoadingModel) moveTo(State::NoDocument);
  const qint64 reopen = m_reopenAfterLoad;
  m_reopenAfterLoad = 0;
  return reopen;
}

void DeskSession::modelFailed() {
  m_loading = false;
  m_reopenAfterLoad = 0;
  if (!m_modelIn) moveTo(State::ModelFailed);
}

bool DeskSession::openStarted(qint64 documentId) {
  if (!m_modelIn) {
    if (m_loading) m_reopenAfterLoad = documentId;
    return false;
  }
  const qint64 previous = m_state == State::Ready ? m_documentId : 0;
  m_previous = previous != documentId ? previous : 0;
  m_openCancelled = false;
  m_documentId = documentId;
  moveTo(State::Opening);
  return true;
}

void DeskSession::documentOpened(qint64 documentId) {
  m_documentId = documentId;
  m_openCancelled = false;
  m_previous = 0;
  moveTo(State::Ready);
}

void DeskSession::cancelRequested() {
  if (m_state == State::Opening) m_openCancelled = true;
}

DeskSession::FailedOpen DeskSession::openFailed() {
  const FailedOpen out{m_openCancelled, m_previous};
  m_openCancelled = false;
  m_previous = 0;
  m_documentId = 0;
  moveTo(withoutDocument());
  return out;
}

void DeskSession::documentClosed(qint64 documentId) {
  if (m_loading && documentId != 0) m_reopenAfterLoad = documentId;  // a reload dropped it: open it again after
  // While a document opens, nothing open can close but the one before it (the engine drops it for the prefill, and
  // may say so after a cancelled open has already asked for it back).
  if (m_state == State::Opening) return;
  m_documentId = 0;
  moveTo(withoutDocument());
}

bool DeskSession::answerStarted() {
  if (m_state != State::Ready) return false;
  moveTo(State::Answering);
  return true;
}

bool DeskSession::answerEnded() {
  if (m_state == State::Answering) moveTo(State::Ready);
  return m_state == State::Ready;
}
