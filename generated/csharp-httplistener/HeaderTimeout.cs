#if MONO
using System;
using System.Collections;
using System.Collections.Generic;
using System.Net;
using System.Reflection;
using System.Threading;

namespace SseServer
{
    /// <summary>
    /// Closes connections whose request headers are not complete within 15 s.
    ///
    /// Mono's HttpListener arms a timer when a connection starts waiting for a request (90 s for
    /// the first one) but stops it at the first byte that arrives, so a client that sends half
    /// its headers holds the connection for good. Twice a second this looks at the connections
    /// HttpListener keeps (by reflection: they are internal) and, for one that has waited 15 s
    /// without a complete request, calls the method Mono's own timer would have called.
    /// </summary>
    static class HeaderTimeout
    {
        static readonly TimeSpan Limit = TimeSpan.FromSeconds(15);
        const BindingFlags Any = BindingFlags.Instance | BindingFlags.Static | BindingFlags.Public | BindingFlags.NonPublic;

        static readonly Assembly System = typeof(HttpListener).Assembly;
        static readonly FieldInfo Endpoints = System.GetType("System.Net.EndPointManager").GetField("ip_to_endpoints", Any);
        static readonly FieldInfo Unregistered = System.GetType("System.Net.EndPointListener").GetField("unregistered", Any);
        static readonly FieldInfo Registered = typeof(HttpListener).GetField("connections", Any);
        static readonly Type Connection = System.GetType("System.Net.HttpConnection");
        static readonly FieldInfo Bound = Connection.GetField("context_bound", Any);
        static readonly FieldInfo Reuses = Connection.GetField("reuses", Any);
        static readonly MethodInfo TimeOut = Connection.GetMethod("OnTimeout", Any);

        // connection -> (waiting since, its request count then)
        static readonly Dictionary<object, KeyValuePair<DateTime, int>> waiting = new Dictionary<object, KeyValuePair<DateTime, int>>();
        /// <summary>Starts the sweeps; dispose the timer to stop them.</summary>
        public static Timer Watch(HttpListener listener)
        {
            return new Timer(_ => Sweep(listener), null, 500, 500);
        }

        static void Sweep(HttpListener listener)
        {
            if (!Monitor.TryEnter(waiting)) return; // the last sweep is still running
            try { SweepOnce(listener); }
            finally { Monitor.Exit(waiting); }
        }

        static void SweepOnce(HttpListener listener)
        {
            DateTime now = DateTime.UtcNow;
            var seen = new HashSet<object>();
            foreach (object connection in Connections(listener))
            {
                if ((bool)Bound.GetValue(connection)) continue; // a request is being answered
                int reuses = (int)Reuses.GetValue(connection);
                seen.Add(connection);
                KeyValuePair<DateTime, int> since;
                if (!waiting.TryGetValue(connection, out since) || since.Value != reuses)
                    waiting[connection] = new KeyValuePair<DateTime, int>(now, reuses);
                else if (now - since.Key > Limit)
                    TimeOut.Invoke(connection, new object[] { null });
            }
            foreach (object gone in new List<object>(waiting.Keys))
                if (!seen.Contains(gone)) waiting.Remove(gone);
        }

        /// <summary>Connections before their first request, then those HttpListener has taken requests from.</summary>
        static List<object> Connections(HttpListener listener)
        {
            var all = new List<object>();
            var byAddress = (Hashtable)Endpoints.GetValue(null);
            lock (byAddress)
                foreach (Hashtable byPort in byAddress.Values)
                    foreach (object endpoint in byPort.Values)
                    {
                        var fresh = (IDictionary)Unregistered.GetValue(endpoint);
                        lock (fresh) all.AddRange(Keys(fresh));
                    }
            var registered = (Hashtable)Registered.GetValue(listener);
            lock (registered.SyncRoot) all.AddRange(Keys(registered));
            return all;
        }

        static IEnumerable<object> Keys(IDictionary dictionary)
        {
            var keys = new List<object>();
            foreach (object key in dictionary.Keys) keys.Add(key);
            return keys;
        }
    }
}
#endif
