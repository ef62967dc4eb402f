// Starts the vendored GraphiQL against this server's /graphql (no CDN, works offline).
(function () {
  var fetcher = GraphiQL.createFetcher({ url: window.location.origin + '/graphql' });
  var root = ReactDOM.createRoot(document.getElementById('graphiql'));
  root.render(React.createElement(GraphiQL, {
    fetcher: fetcher,
    defaultQuery: '# Try it: the demo municipality\n{\n  tenant(city: "demo") {\n    name\n    slug\n    locales\n  }\n}\n'
  }));
})();
