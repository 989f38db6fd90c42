{-# LANGUAGE OverloadedStrings #-}

-- sse-server: a Server-Sent Events server on Scotty and Warp.
module Main (main) where

import Control.Applicative ((<|>))
import Control.Concurrent (MVar, ThreadId, forkIO, killThread, myThreadId, newMVar, threadDelay, withMVar)
import Control.Concurrent.STM
import Control.Exception (IOException, finally, mask_, try)
import Control.Monad (forM, forM_, forever, guard, join, unless, void, when)
import Control.Monad.IO.Class (liftIO)
import Crypto.Random (getRandomBytes)
import Data.Aeson (Value (..), decode, encode, object, (.=))
import qualified Data.Aeson.KeyMap as KeyMap
import qualified Data.ByteArray as BA
import Data.ByteArray.Encoding (Base (Base16), convertToBase)
import qualified Data.ByteString as BS
import Data.ByteString.Builder (byteString)
import qualified Data.ByteString.Char8 as BS8
import qualified Data.ByteString.Lazy as BL
import Data.Char (isDigit, isSpace, toLower)
import Data.Either (isLeft)
import Data.Foldable (toList)
import qualified Data.Map.Strict as Map
import Data.Maybe (catMaybes, fromMaybe)
import Data.Sequence (Seq, (|>))
import qualified Data.Sequence as Seq
import Data.Streaming.Network (bindPortTCP)
import Data.String (fromString)
import qualified Data.Text as T
import qualified Data.Text.Encoding as TE
import qualified Data.Text.Lazy as TL
import Data.Time (defaultTimeLocale, formatTime, getCurrentTime)
import Network.HTTP.Types
import qualified Network.Socket as Net
import qualified Network.Socket.ByteString as Net (recv)
import Network.Wai
  ( Middleware,
    Request,
    RequestBodyLength (..),
    mapResponseHeaders,
    pathInfo,
    queryString,
    remoteHost,
    requestBodyLength,
    requestHeaders,
    requestMethod,
    responseLBS,
  )
import qualified Network.Wai.Handler.Warp as Warp
import qualified Network.Wai.Handler.Warp.Internal as WarpI
import System.Environment (lookupEnv)
import System.IO (BufferMode (..), hSetBuffering, stdout)
import System.Posix.Signals (Handler (..), installHandler, sigINT, sigTERM)
import Web.Scotty
  ( ActionM,
    ScottyM,
    bodyReader,
    finish,
    get,
    json,
    literal,
    matchAny,
    middleware,
    notFound,
    options,
    post,
    request,
    scottyApp,
    setHeader,
    status,
    stream,
  )

-- Settings from the event spec.

serverName, streamPath :: String
serverName = "sse-server"
streamPath = "/events"

defaultPort, retryMs, heartbeatSeconds, historySize, maxClients :: Int
defaultPort = 3014
retryMs = 3000
heartbeatSeconds = 15
historySize = 100
maxClients = 10000

-- | A client with more than this many bytes of frames waiting is dropped.
maxQueueBytes :: Int
maxQueueBytes = 1024 * 1024

maxBodyBytes, maxEventName, maxJsonDepth :: Int
maxBodyBytes = 64 * 1024
maxEventName = 64
maxJsonDepth = 64

-- | Events sent on a timer: name, period in ms, and data: a JSON object in the spec's key
-- order (aeson's Object would sort the keys).
timedEvents :: [(T.Text, Int, T.Text)]
timedEvents =
  [ ("clock", 1000, "{\"source\":\"server-clock\",\"timezone\":\"UTC\"}"),
    ("stock-price", 2000, "{\"symbol\":\"ACME\",\"price\":128.42,\"currency\":\"USD\",\"exchange\":\"NASDAQ\"}")
  ]

-- | The data with the time added as its last field (the spec reserves "timestamp").
withTimestamp :: T.Text -> T.Text -> T.Text
withTimestamp fields stamp = T.dropEnd 1 fields <> separator <> "\"timestamp\":\"" <> stamp <> "\"}"
  where
    separator = if fields == "{}" then "" else ","

-- The hub: ids, history and clients. Events go out one at a time (`sending`): one small STM
-- transaction hands out the id, keeps the event and takes the clients of that moment, so a client
-- that joins (also a transaction) either is among them or finds the event in the history; the
-- frame then goes to each of them in a transaction of its own. (One transaction over every
-- client's queue would be restarted by any client taking a frame meanwhile, and costs GHC time
-- quadratic in the number of TVars it touches.)

data Client = Client
  { queue :: TQueue BS.ByteString,
    queued :: TVar Int, -- bytes waiting in `queue`
    dropped :: TVar Bool,
    thread :: ThreadId
  }

data Hub = Hub
  { lastId :: TVar Int,
    history :: TVar (Seq (Int, BS.ByteString)),
    clients :: TVar (Map.Map Int Client),
    nextKey :: TVar Int,
    closing :: TVar Bool,
    sending :: MVar () -- held while an event goes out, so every client gets the events in order
  }

newHub :: IO Hub
newHub = Hub <$> newTVarIO 0 <*> newTVarIO Seq.empty <*> newTVarIO Map.empty <*> newTVarIO 0 <*> newTVarIO False <*> newMVar ()

-- | One event at a time; once begun, it reaches every client even if the thread sending it
-- is killed (a publish request timing out).
oneAtATime :: Hub -> IO a -> IO a
oneAtATime hub = mask_ . withMVar (sending hub) . const

-- | Queue a frame for these clients, each in a transaction of its own. A client whose queue
-- would pass maxQueueBytes stopped reading: it is dropped and its connection closed.
deliver :: Hub -> BS.ByteString -> Map.Map Int Client -> IO ()
deliver hub bytes targets = do
  slow <- fmap catMaybes . forM (Map.toList targets) $ \(key, client) -> atomically $ do
    waiting <- readTVar (queued client)
    if waiting + BS.length bytes <= maxQueueBytes
      then do
        writeTQueue (queue client) bytes
        writeTVar (queued client) (waiting + BS.length bytes)
        pure Nothing
      else do
        -- Unless it has left meanwhile (then its thread may serve another request).
        present <- Map.member key <$> readTVar (clients hub)
        when present $ do
          modifyTVar' (clients hub) (Map.delete key)
          writeTVar (dropped client) True
        pure (client <$ guard present)
  hangUp slow

-- | A dropped client's thread is blocked writing to a socket nobody reads; killing it makes
-- Warp close the connection.
hangUp :: [Client] -> IO ()
hangUp = mapM_ (forkIO . killThread . thread)

publish :: Hub -> T.Text -> T.Text -> IO Int
publish hub event text = oneAtATime hub $ do
  (eventId, bytes, targets) <- atomically $ do
    eventId <- stateTVar (lastId hub) (\n -> (n + 1, n + 1))
    let bytes = frame eventId event text
    modifyTVar' (history hub) (\kept -> Seq.drop (Seq.length kept + 1 - historySize) (kept |> (eventId, bytes)))
    (,,) eventId bytes <$> readTVar (clients hub)
  deliver hub bytes targets
  pure eventId

-- | One event; every line of data (split on CRLF, CR or LF) gets its own `data: `.
-- wai-extra's Network.Wai.EventSource is not used: it writes `retry:` and comments without the
-- blank line after them, sets no Cache-Control, and is a WAI application outside Scotty's routes.
frame :: Int -> T.Text -> T.Text -> BS.ByteString
frame eventId event text =
  TE.encodeUtf8 . T.concat $
    ["id: ", T.pack (show eventId), "\nevent: ", event, "\n"] ++ ["data: " <> line <> "\n" | line <- dataLines] ++ ["\n"]
  where
    dataLines = T.splitOn "\n" (T.replace "\r" "\n" (T.replace "\r\n" "\n" text))

-- | A string is sent as its text, any other JSON value as compact JSON.
dataText :: Value -> T.Text
dataText (String text) = text
dataText value = TE.decodeUtf8 (BL.toStrict (encode value))

-- | Join: the kept events after `since` and a place in the broadcast, or Nothing when full.
subscribe :: Hub -> ThreadId -> Maybe Integer -> STM (Maybe (Int, Client, [BS.ByteString]))
subscribe hub tid since = do
  current <- readTVar (clients hub)
  if Map.size current >= maxClients
    then pure Nothing
    else do
      key <- stateTVar (nextKey hub) (\n -> (n, n + 1))
      client <- Client <$> newTQueue <*> newTVar 0 <*> newTVar False <*> pure tid
      writeTVar (clients hub) (Map.insert key client current)
      kept <- readTVar (history hub)
      let replay = maybe [] (\n -> [bytes | (i, bytes) <- toList kept, toInteger i > n]) since
      pure (Just (key, client, replay))

unsubscribe :: Hub -> Int -> IO ()
unsubscribe hub key = atomically (modifyTVar' (clients hub) (Map.delete key))

count :: Hub -> IO Int
count hub = Map.size <$> readTVarIO (clients hub)

-- | The next frame for a client, or Nothing once it is dropped or the server is closing.
nextFrame :: Hub -> Client -> STM (Maybe BS.ByteString)
nextFrame hub client = (Nothing <$ (check =<< stopping)) `orElse` next
  where
    stopping = (||) <$> readTVar (dropped client) <*> readTVar (closing hub)
    next = do
      bytes <- readTQueue (queue client)
      modifyTVar' (queued client) (subtract (BS.length bytes))
      pure (Just bytes)

-- | The socket of each open connection, by the client's address. Warp reads nothing while a
-- response streams, so on its own it notices a client that hung up only at the next write.
type Sockets = TVar (Map.Map Net.SockAddr Net.Socket)

-- | Waits for the client to close its side of the connection (EOF), then ends its stream.
watchHangUp :: Hub -> Int -> Client -> Net.Socket -> IO ThreadId
watchHangUp hub key client sock = forkIO $ do
  got <- try (Net.recv sock 1) :: IO (Either IOException BS.ByteString)
  when (either (const True) BS.null got) $ do
    unsubscribe hub key
    atomically (writeTVar (dropped client) True)

-- HTTP

-- | `Last-Event-ID`, else `?lastEventId=`, when it is 1-1024 ASCII digits.
lastEventId :: Request -> Maybe Integer
lastEventId req = do
  raw <- lookup "Last-Event-ID" (requestHeaders req) <|> join (lookup "lastEventId" (queryString req))
  guard (BS.length raw <= 1024 && not (BS.null raw) && BS8.all isDigit raw)
  fst <$> BS8.readInteger raw

-- | The token of `Authorization: Bearer <token>`, the scheme in any case.
bearer :: Request -> Maybe BS.ByteString
bearer req = do
  value <- lookup hAuthorization (requestHeaders req)
  let (scheme, rest) = BS.splitAt 6 value
      token = BS8.dropWhile (== ' ') rest
  guard (BS8.map toLower scheme == "bearer" && BS.length token < BS.length rest)
  pure token

-- | Compares in constant time (for equal lengths).
sameSecret :: BS.ByteString -> BS.ByteString -> Bool
sameSecret = BA.constEq

-- | With a stream token, it is needed in `Authorization: Bearer` or `?token=`; either is enough.
streamAuthorized :: Maybe BS.ByteString -> Request -> Bool
streamAuthorized Nothing _ = True
streamAuthorized (Just token) req =
  any (sameSecret token) (catMaybes [bearer req, join (lookup "token" (queryString req))])

failWith :: Status -> T.Text -> ActionM a
failWith code message = status code >> json (object ["error" .= message]) >> finish

cors :: Middleware
cors app req respond = app req (respond . mapResponseHeaders (++ corsHeaders))
  where
    corsHeaders = [("Access-Control-Allow-Origin", "*")]

publishAuthorized :: BS.ByteString -> Request -> Bool
publishAuthorized token req = maybe False (sameSecret token) (bearer req)

-- | The checks on `POST /publish` that come before its body: token (401), Content-Type (415)
-- and a Content-Length over the cap (413). They run before Scotty, which reads a form body
-- whole to parse its parameters before any route runs.
publishGate :: BS.ByteString -> Middleware
publishGate token app req respond
  | pathInfo req /= ["publish"] || requestMethod req /= methodPost = app req respond
  | not (publishAuthorized token req) =
    refuse status401 [("WWW-Authenticate", "Bearer")] "unauthorized"
  | not (maybe False isJson (lookup hContentType (requestHeaders req))) =
    refuse status415 [] "Content-Type must be application/json"
  | KnownLength size <- requestBodyLength req,
    size > fromIntegral maxBodyBytes =
    refuse status413 [] "body over 64 KiB"
  | otherwise = app req respond
  where
    isJson value = BS8.map toLower (BS8.filter (not . isSpace) (BS8.takeWhile (/= ';') value)) == "application/json"
    refuse code extra message =
      respond (responseLBS code ((hContentType, "application/json") : extra) (encode (object ["error" .= (message :: T.Text)])))

-- | The body, or Nothing as soon as it passes `limit` bytes (a chunked body included).
readAtMost :: Int -> IO BS.ByteString -> IO (Maybe BS.ByteString)
readAtMost limit next = go 0 []
  where
    go size chunks = next >>= step size chunks
    step size chunks chunk
      | BS.null chunk = pure (Just (BS.concat (reverse chunks)))
      | size' > limit = pure Nothing
      | otherwise = go size' (chunk : chunks)
      where
        size' = size + BS.length chunk

-- | The deepest nesting of `[` and `{` outside strings.
jsonDepth :: BS.ByteString -> Int
jsonDepth = (\(_, deepest, _, _) -> deepest) . BS8.foldl' step (0, 0, False, False)
  where
    step (depth, deepest, inString, escaped) c
      | inString = if escaped then (depth, deepest, True, False) else (depth, deepest, c /= '"', c == '\\')
      | c == '"' = (depth, deepest, True, False)
      | c == '[' || c == '{' = (depth + 1, max deepest (depth + 1), False, False)
      | c == ']' || c == '}' = (depth - 1, deepest, False, False)
      | otherwise = (depth, deepest, False, False)

preflight :: ActionM ()
preflight = do
  setHeader "Access-Control-Allow-Methods" "GET, POST, OPTIONS"
  setHeader "Access-Control-Allow-Headers" "Last-Event-ID, Cache-Control, Content-Type, Authorization"
  setHeader "Access-Control-Max-Age" "86400"
  status status204

notAllowed :: TL.Text -> ActionM ()
notAllowed allow = setHeader "Allow" allow >> failWith status405 "method not allowed"

routes :: Hub -> Sockets -> Maybe BS.ByteString -> BS.ByteString -> ScottyM ()
routes hub sockets streamToken publishToken = do
  middleware cors
  middleware (publishGate publishToken)

  get (literal streamPath) $ do
    req <- request
    unless (streamAuthorized streamToken req) $ do
      setHeader "WWW-Authenticate" "Bearer"
      failWith status401 "unauthorized"
    -- Warp runs the streaming body on this same thread.
    tid <- liftIO myThreadId
    joined <- liftIO . atomically $ subscribe hub tid (lastEventId req)
    case joined of
      Nothing -> setHeader "Retry-After" "1" >> failWith status503 "too many clients"
      Just (key, client, replay) -> do
        -- Scotty's `stream` sets no Content-Type of its own.
        setHeader "Content-Type" "text/event-stream; charset=utf-8"
        setHeader "Cache-Control" "no-store"
        setHeader "X-Accel-Buffering" "no"
        sock <- liftIO (Map.lookup (remoteHost req) <$> readTVarIO sockets)
        stream $ \write flush -> do
          -- Warp's timeout (for slow request headers) would also cut a quiet stream.
          Warp.pauseTimeout req
          watcher <- traverse (watchHangUp hub key client) sock
          let send bytes = write (byteString bytes) >> flush
              loop = atomically (nextFrame hub client) >>= mapM_ (\bytes -> send bytes >> loop)
          (send (BS.concat (hello : replay)) >> loop)
            `finally` (mapM_ killThread watcher >> unsubscribe hub key)
  options (literal streamPath) preflight
  matchAny (literal streamPath) (notAllowed "GET, OPTIONS")

  get "/health" $ do
    clientCount <- liftIO (count hub)
    json (object ["status" .= ("ok" :: T.Text), "clients" .= clientCount])
  matchAny "/health" (notAllowed "GET")

  -- publishGate has checked the token, the Content-Type and any Content-Length.
  post "/publish" $ do
    raw <- liftIO . readAtMost maxBodyBytes =<< bodyReader
    body <- maybe (failWith status413 "body over 64 KiB") pure raw
    when (isLeft (TE.decodeUtf8' body)) $ failWith status400 "body is not valid UTF-8"
    when (jsonDepth body > maxJsonDepth) $ failWith status400 "body is nested deeper than 64 levels"
    fields <- case decode (BL.fromStrict body) of
      Just (Object fields) -> pure fields
      Just _ -> failWith status400 "body must be a JSON object"
      Nothing -> failWith status400 "body is not JSON"
    event <- case KeyMap.lookup "event" fields of
      Nothing -> pure "message"
      Just (String name) | validName name -> pure name
      Just _ -> failWith status400 "event must be a string of 1-64 characters without line breaks"
    eventId <- liftIO (publish hub event (dataText (fromMaybe Null (KeyMap.lookup "data" fields))))
    status status202
    json (object ["id" .= eventId])
  options "/publish" preflight
  matchAny "/publish" (notAllowed "POST, OPTIONS")

  notFound (failWith status404 "not found")
  where
    hello = BS8.pack ("retry: " ++ show retryMs ++ "\n\n")
    validName name = not (T.null name) && T.length name <= maxEventName && not (T.any (`elem` ['\r', '\n']) name)

-- | An environment variable; an empty one counts as unset.
env :: String -> IO (Maybe String)
env key = (>>= \value -> if null value then Nothing else Just value) <$> lookupEnv key

-- | A random publish token (128 bits, hex), logged once: SSE_PUBLISH_TOKEN is not set.
newPublishToken :: IO BS.ByteString
newPublishToken = do
  token <- convertToBase Base16 <$> (getRandomBytes 16 :: IO BS.ByteString)
  BS8.putStrLn ("publish token: " <> token <> " (set SSE_PUBLISH_TOKEN to choose your own)")
  pure token

main :: IO ()
main = do
  hSetBuffering stdout LineBuffering
  port <- maybe defaultPort read <$> env "PORT"
  host <- fromMaybe "0.0.0.0" <$> env "HOST"
  streamToken <- fmap (TE.encodeUtf8 . T.pack) <$> env "SSE_TOKEN"
  publishToken <- maybe newPublishToken (pure . TE.encodeUtf8 . T.pack) =<< env "SSE_PUBLISH_TOKEN"
  hub <- newHub

  forM_ timedEvents $ \(event, every, fields) -> forkIO . forever $ do
    threadDelay (every * 1000)
    now <- getCurrentTime
    let stamp = T.pack (formatTime defaultTimeLocale "%Y-%m-%dT%H:%M:%S%03QZ" now)
    void (publish hub event (withTimestamp fields stamp))
  void . forkIO . forever $ do
    threadDelay (heartbeatSeconds * 1000000)
    deliver hub ": heartbeat\n\n" =<< readTVarIO (clients hub)

  sockets <- newTVarIO Map.empty
  app <- scottyApp (routes hub sockets streamToken publishToken)
  -- Warp's own accept loop, plus a note of each connection's socket (see Sockets).
  listener <- bindPortTCP port (fromString host)
  let settings =
        Warp.setBeforeMainLoop (putStrLn (serverName ++ " listening on http://" ++ host ++ ":" ++ show port))
          . Warp.setOnClose (atomically . modifyTVar' sockets . Map.delete)
          . Warp.setGracefulShutdownTimeout (Just 2)
          -- Warp closes a connection idle for one to two of these periods: request headers
          -- not complete within 15 s are cut (a stream pauses this timeout).
          . Warp.setTimeout 7
          $ Warp.defaultSettings
      accept = do
        (sock, addr) <- Net.accept listener
        WarpI.setSocketCloseOnExec sock
        Net.setSocketOption sock Net.NoDelay 1
        atomically (modifyTVar' sockets (Map.insert addr sock))
        pure (WarpI.socketConnection settings sock, addr)
  -- On SIGTERM or SIGINT: close the listening socket, end every stream; Warp returns once the
  -- connections are done (or after the grace period).
  forM_ [sigTERM, sigINT] $ \signal ->
    installHandler signal (Catch (atomically (writeTVar (closing hub) True) >> Net.close listener)) Nothing
  WarpI.runSettingsConnectionMaker settings accept app
