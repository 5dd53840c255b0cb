// Every text the console shows, in one place: translate this file (and only it).
// {name} in a text is replaced by the value of that name.
export const STRINGS = {
  title: "facesvc console",
  skip: "Skip to the content",
  navLabel: "Pages",
  navGallery: "Gallery",
  navTest: "Test",
  signOut: "Sign out",
  signedInAs: "Signed in as {name} ({scopes})",
  collection: "Collection",

  signInTitle: "Sign in",
  signInIntro:
    "Paste an API key (from `facesvc keys create`). It stays in this tab only and is sent with every request as the X-API-Key header.",
  apiKey: "API key",
  signIn: "Sign in",
  signingIn: "Checking the key…",
  badKey: "This key was refused: {detail}",
  scopesTitle: "What this key may do",
  scopeRead: "see the gallery",
  scopeEnroll: "enroll, rename and delete people",
  scopeVerify: "test faces (verify, recognize, detect)",
  scopeAdmin: "everything, audit trail and decision log included",
  scopeMetrics: "read the metrics",

  galleryTitle: "Gallery",
  galleryNeedsRead: "This key may not see the gallery (it needs the read scope).",
  findLabel: "Find by external id",
  find: "Find",
  showAll: "Show all",
  colName: "Name",
  colExternalId: "External id",
  colCreated: "Enrolled",
  colActions: "Actions",
  noPeople: "Nobody is enrolled here yet.",
  nobodyFound: "Nobody has the external id {id}.",
  firstPage: "First page",
  nextPage: "Next page",
  pageInfo: "Page {page}: {count} people",
  deleteLabel: "Delete {name}",
  delete: "Delete",

  enrollTitle: "Enroll a person",
  name: "Name",
  externalId: "External id (optional)",
  photo: "Photo with one face",
  largestFace: "If the photo has several faces, use the largest",
  enroll: "Enroll",
  enrolling: "Enrolling…",
  enrolled: "Enrolled {name}: face found with detection score {score}.",

  confirmTitle: "Delete this person?",
  confirmText:
    "{name} and every enrolled face of theirs leave the database and the search index. This cannot be undone.",
  confirmDelete: "Delete for good",
  cancel: "Cancel",
  deleted: "Deleted {name}.",

  testTitle: "Test a face",
  testNeedsVerify: "This key may not test faces (it needs the verify scope).",
  probe: "Photo to test",
  recognize: "Recognize",
  recognizing: "Searching the gallery…",
  decisionKnown: "Recognized: {name}",
  decisionUnknown: "Unknown: nobody in the gallery is near enough",
  distance: "Distance",
  threshold: "Threshold",
  margin: "Margin to the runner-up",
  detectionScore: "Detection score",
  externalIdShort: "External id",
  notShown: "—",
  faceBox: "The photo with the face box drawn on it",

  errorNoFace: "No face was found in this photo. Use a clear, front-facing photo.",
  errorMultipleFaces:
    "This photo has several faces. Use a photo of one person, or tick “use the largest”.",
  errorInvalidImage: "This file is not an image the service can read.",
  errorTooLarge: "This photo is too large.",
  errorForbidden: "This key may not do that: {detail}",
  errorConflict: "{detail}",
  errorOther: "The service answered {status}: {detail}",
  errorNetwork: "The service could not be reached.",
  chooseFile: "Choose a photo first.",
};

export function t(key, values = {}) {
  const text = STRINGS[key] ?? key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(values[name] ?? ""));
}
