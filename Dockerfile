# Portcullis, the Envoy ext_authz sidecar. Built and run by docker-compose.yml:
#   docker compose up --build
# The build compiles only src/ (tsconfig.json also includes test/ and bench/ for `npm test`,
# which are not copied); output lands in dist/src/ because tsconfig's rootDir is the repo root.

FROM node:20-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev --no-audit --no-fund

FROM node:20-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
# Defaults baked into the image; docker-compose.yml mounts the repo's copies over them.
COPY portcullis.yaml ./portcullis.yaml
COPY rules ./rules
# Unprivileged: the server only needs to read its config and rules and bind a high port.
USER node
EXPOSE 50051
CMD ["node", "dist/src/cli.js", "serve", "--config", "/app/portcullis.yaml"]
