// What the desk is doing, as one state machine: no model, a model loading or failed, no document, a document
// opening, ready, or an answer streaming. Widget-free (tested on its own); MainWindow feeds it the engine's events and
// shows its state (the chat pane's banner, what Stop cancels, whether a question can be sent).
//
// Besides the state it keeps the facts the transitions need: whether a model is in (a reload runs with the old model
// still loaded, and a failed reload keeps it), whether a load is running, the document to open again once the model
// being loaded is in (a reload drops the open document; an open asked for during a load waits for it), and the
// document to bring back when the user cancels an open (the engine drops it for the prefill).
#pragma once

#include <QObject>

class DeskSession : public QObject {
  Q_OBJECT

 public:
  enum class State { NoModel, LoadingModel, ModelFailed, NoDocument, Opening, Ready, Answering };
  Q_ENUM(State)

  explicit DeskSession(QObject* parent = nullptr) : QObject(parent) {}

  State state() const { return m_state; }
  bool hasModel() const { return m_modelIn; }
  bool isLoadingModel() const { return m_loading; }
  qint64 documentId() const { return m_documentId; }  // the document opening or open; 0: none

  // The settings name no usable model: nothing loads (a model already in stays).
  void noModelToLoad(bool modelConfigured);
  // A load starts. The document open now is remembered, to be opened again once the new model is in.
  void modelLoadStarted();
  // The model is in. Returns the document to open now (0: none).
  qint64 modelLoaded();
  void modelFailed();
  // An open is asked for. Without a model it does not start (false); during a first load it is remembered instead.
  bool openStarted(qint64 documentId);
  void documentOpened(qint64 documentId);
  // The user asked to stop the open in progress (its failure that follows is a cancel, not an error).
  void cancelRequested();
  struct FailedOpen {
    bool cancelled = false;  // by the user
    // The document ready before the open, to open again from its saved KV (a refused or cancelled open must not
    // take the document being read away); 0: none.
    qint64 reopen = 0;
  };
  // The open failed: no document is open (the engine dropped the previous one before it started).
  FailedOpen openFailed();
  // A document was closed: deleted, or dropped by a reload (then it is opened again after). While a document opens,
  // a close is the previous document's and leaves the open running.
  void documentClosed(qint64 documentId);
  // A question can be sent only when a document is ready (false otherwise, and nothing changes).
  bool answerStarted();
  // The answer finished or failed. Returns whether the desk is ready again (an open started meanwhile is not).
  bool answerEnded();

 signals:
  void stateChanged(DeskSession::State state);

 private:
  void moveTo(State s);
  State withoutDocument() const;  // what the desk shows with no document open

  State m_state = State::NoModel;
  bool m_modelIn = false;
  bool m_loading = false;
  bool m_modelConfigured = false;  // a model failed to load, as opposed to none chosen
  qint64 m_documentId = 0;
  qint64 m_reopenAfterLoad = 0;
  bool m_openCancelled = false;  // the open in progress was cancelled by the user
  qint64 m_previous = 0;         // the document ready before that open
};
